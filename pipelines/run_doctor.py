"""The data doctor inside a run: what in the run's own data may have made its figures wrong, for its report page.

`dlpipe doctor DATA` embeds every photo with a frozen backbone; a run already has something better for label errors,
the predictions of models that never saw each example (the cross-validation folds' out-of-fold predictions, else
the validation split's), and duplicates need no model at all. So a classification run checks, after evaluation:
copies across its train/validation split (they inflate every validation figure), copies in two classes, exact and
near copies (image hashes; for text the same words or a near-same character n-gram vector), and, with confident
learning (cleanlab) on those held-out predictions, likely label errors. It writes doctor.csv (ready for
`--set load.exclude=doctor.csv`) and doctor.html into the run folder; the report page shows the summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlpipe.pipelines.doctor import Diagnosis, Finding, duplicate_findings, imbalance_findings, label_findings

DOCTOR_TASKS = ("image", "text")
MIN_HELD_OUT = 20  # fewer held-out predictions than this (or under 5 of a class) are too few to judge labels by
TEXT_SIMILARITY = 0.9


def doctor_run(ctx: Any) -> Diagnosis | None:
    """The findings of a finished classification run (None for other tasks); label errors where held-out
    predictions allow (`diagnosis.folds` says how: K folds, 1 = the validation split only, 0 = not searched)."""
    if ctx.task is None or ctx.task.name not in DOCTOR_TASKS or not ctx.train.labels:
        return None
    from dlpipe.models.unknown import UNKNOWN_LABEL

    names = [name for name in ctx.class_names if name != UNKNOWN_LABEL]  # the answer added after training
    inputs = list(ctx.train.inputs) + list(ctx.val.inputs)
    labels = list(ctx.train.labels) + list(ctx.val.labels)
    split_of = ["train"] * len(ctx.train.inputs) + ["val"] * len(ctx.val.inputs)
    diagnosis = Diagnosis(data=str(ctx.config["load"].path), backbone="", folds=0,
                          class_counts={name: labels.count(i) for i, name in enumerate(names)})
    if ctx.task.name == "image":
        diagnosis.findings += duplicate_findings(inputs, labels, names, np.zeros((len(inputs), 0)), 4, None, split_of)
    else:
        diagnosis.findings += text_findings(inputs, labels, names, split_of)
    held_out = held_out_predictions(Path(ctx.out_dir))
    if held_out is not None:
        held_inputs, logits, held_labels, folds = held_out
        probs = _softmax(logits)
        classes = names[:probs.shape[1]]
        if _enough(held_labels, len(classes)):
            rows = held_inputs if ctx.task.name == "image" else _sentence_rows(held_inputs, inputs, split_of)
            errors, diagnosis.label_scores = label_findings(rows, held_labels.tolist(), probs, classes)
            if ctx.task.name == "text":  # a sentence has no class folder to move it to
                errors = [Finding(f.path, f.problem, f.detail.replace("/ but", " but"), "correct its label or delete it")
                          for f in errors]
            diagnosis.findings += errors
            diagnosis.folds = folds
            diagnosis.probe_accuracy = float(np.mean(np.argmax(probs, axis=1) == held_labels))
    diagnosis.findings += imbalance_findings(diagnosis.class_counts, diagnosis.data)
    diagnosis.method = _method(ctx.task.name, diagnosis, len(held_out[0]) if held_out else 0)
    return diagnosis


def _method(task: str, diagnosis: Diagnosis, held_out: int) -> str:
    copies = ("exact copies (file bytes) and near copies (64-bit difference hash, at most 4 bits apart)"
              if task == "image" else "the same words, or character 3-5-gram TF-IDF cosine of at least "
              f"{TEXT_SIMILARITY}")
    if diagnosis.folds:
        source = (f"the {held_out} out-of-fold predictions of the {diagnosis.folds} cross-validation folds"
                  if diagnosis.folds > 1 else f"the {held_out} validation predictions (only the validation split is "
                  "searched: train.cv_folds searches every example)")
        labels = (f"Label errors: confident learning (cleanlab) on {source}, each example predicted by a model that "
                  f"never trained on it (their accuracy against the labels as given: {diagnosis.probe_accuracy:.3f}).")
    else:
        labels = (f"Label errors: not searched, too few held-out predictions (at least {MIN_HELD_OUT}, 5 of each "
                  "class).")
    return (f"This run's own check of its data. Copies: {copies}, across classes and across the run's train/"
            f"validation split. {labels} `--set load.exclude=doctor.csv` leaves the listed files out of a new run "
            "(delete the rows you want to keep first).")


def text_findings(texts: list[str], labels: list[int], names: list[str], split_of: list[str]) -> list[Finding]:
    """Duplicates and near-duplicates of a text run, named by split and position; a copy on both sides of the split
    is reported as such (the validation copy is scored on a sentence the model trained on)."""
    from dlpipe.pipelines.doctor_text import normalised, quote, text_duplicate_findings

    rows = [_text_row(i, split_of.count("train")) for i in range(len(texts))]
    findings = text_duplicate_findings(rows, texts, labels, names, TEXT_SIMILARITY)
    trained = {normalised(text): i for i, (text, side) in enumerate(zip(texts, split_of)) if side == "train"}
    for index, (text, side) in enumerate(zip(texts, split_of)):
        seen = trained.get(normalised(text))
        if side == "val" and seen is not None:
            findings.append(Finding(rows[index], "split_duplicate", f"{quote(text)}: also training {rows[seen]}",
                                    "delete the validation copy (it inflates validation figures)"))
    return findings


def held_out_predictions(out_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray, int] | None:
    """(inputs, log-probabilities, labels, folds) of every example a model that never saw it predicted: pooled over
    the cross-validation folds (OUT/folds/K/), else the run's validation split (folds = 1); None when the run kept
    no inputs beside its predictions."""
    from dlpipe.pipelines.calibration import OUTPUTS_FILE
    from dlpipe.pipelines.training.crossval import FOLDS_DIR

    folds = sorted(path for path in (out_dir / FOLDS_DIR).glob("*") if (path / OUTPUTS_FILE).is_file())
    files = [fold / OUTPUTS_FILE for fold in folds] or [out_dir / OUTPUTS_FILE]
    parts = []
    for file in files:
        if not file.is_file():
            return None
        with np.load(file) as saved:
            if "inputs" not in saved:
                return None
            logits = saved["logits"]
            parts.append((saved["inputs"].tolist(), logits.mean(axis=0) if logits.ndim == 3 else logits, saved["labels"]))
    return ([path for inputs, _, _ in parts for path in inputs], np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), len(folds) or 1)


def write_run_doctor(ctx: Any) -> str | None:
    """Run the checks and write doctor.csv and doctor.html into the run folder; one line for the console."""
    from dlpipe.pipelines.doctor_page import write_doctor_files

    diagnosis = doctor_run(ctx)
    if diagnosis is None:
        return None
    csv_path, _ = write_doctor_files(diagnosis, Path(ctx.out_dir))
    counts = {problem: len(diagnosis.of(problem)) for problem in dict.fromkeys(f.problem for f in diagnosis.findings)}
    where = {0: "not searched (too few held-out predictions)", 1: "from the validation predictions"}.get(
        diagnosis.folds, f"from {diagnosis.folds} folds' out-of-fold predictions")
    found = ", ".join(f"{count} {problem.replace('_', ' ')}" for problem, count in counts.items()) or "nothing"
    return f"data doctor: {found} (label errors {where}): {csv_path}"


def _enough(labels: np.ndarray, classes: int) -> bool:
    return len(labels) >= MIN_HELD_OUT and all(np.sum(labels == k) >= 5 for k in range(classes))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _text_row(index: int, trained: int) -> str:
    """A sentence's name: its place in the run's training split, or in its validation split after the `trained`."""
    return f"training sentence {index + 1}" if index < trained else f"validation sentence {index - trained + 1}"


def _sentence_rows(held_inputs: list[str], inputs: list[str], split_of: list[str]) -> list[str]:
    """Held-out sentences named by their place in the run's split (their text is in the detail); a sentence the run
    does not hold (a fold's own split) by its first 80 characters."""
    position: dict[str, int] = {}
    for index, text in enumerate(inputs):
        position.setdefault(text, index)  # the first copy, as list.index would find
    trained = split_of.count("train")
    return [_text_row(position[text], trained) if text in position else text[:80] for text in held_inputs]
