"""`dlpipe doctor DATA`: what is wrong with an image folder before anything is trained on it.

Likely label errors come from confident learning (cleanlab's `find_label_issues`) on out-of-fold probabilities of
a logistic-regression probe over frozen backbone features: each photo is judged by a model that never saw it.
Exact duplicates come from file hashes, near-duplicates from a perceptual hash (and, when asked, the cosine of the
backbone features); a duplicate in two class folders is a label conflict. Unreadable files are the load stage's
skipped list; class imbalance compares each class with the largest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

PIPELINE = "image-classify"
FEATURE_STAGES = ("load", "model", "preprocess")
IMBALANCE_RATIO = 3.0  # a class with under a third of the largest class's photos is flagged
# the probe's inverse L2 strengths tried; the one with the lowest out-of-fold log-loss of the given labels is used
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Finding:
    """One problem with one file (or class folder), and what to do about it."""

    path: str
    problem: str
    detail: str
    action: str


@dataclass
class Diagnosis:
    """Everything `dlpipe doctor` found in a folder."""

    data: str
    backbone: str
    folds: int
    class_counts: dict[str, int]
    probe_c: float = 0.0
    probe_accuracy: float = 0.0  # out-of-fold accuracy against the labels as given
    findings: list[Finding] = field(default_factory=list)
    label_scores: list[dict[str, Any]] = field(default_factory=list)  # the flagged photos, most suspicious first
    method: str = ""  # how the findings were made, when not by `dlpipe doctor` itself (a run's own check)

    def of(self, problem: str) -> list[Finding]:
        return [f for f in self.findings if f.problem == problem]


def diagnose(data: str, out_dir: Path, config_file: str | None = None, sets: Iterable[str] = (), folds: int = 5,
             near_bits: int = 4, cosine: float | None = None, probe_c: float | None = None,
             echo: Callable[[str], None] = print) -> Diagnosis:
    """Load the folder as a run would (same config keys), embed every photo and collect the findings."""
    from dlpipe import run_lock
    from dlpipe.data.exclude_list import canonical
    from dlpipe.errors import ConfigError
    from dlpipe.pipelines.api import resolve_config
    from dlpipe.pipelines.catalog import get_pipeline
    from dlpipe.pipelines.engine import run_pipeline

    if folds < 2:
        raise ConfigError("--folds", f"must be at least 2. Received: {folds}")
    if (out_dir / "config.yaml").exists() and not (out_dir / "doctor.csv").exists():
        raise ConfigError("--out", f"{out_dir} holds a run, whose config.yaml the doctor would replace; give it a "
                                   "folder of its own")
    config = resolve_config(PIPELINE, config_file, sets, data)
    with run_lock.hold(out_dir, echo=echo):
        ctx = run_pipeline(get_pipeline(PIPELINE), dataclasses.replace(config, stages=list(FEATURE_STAGES)),
                           out_dir, echo=echo)
        pairs = sorted(zip(ctx.train.inputs + ctx.val.inputs, ctx.train.labels + ctx.val.labels))
        paths, labels = [canonical(p) for p, _ in pairs], [label for _, label in pairs]
        held_out = {canonical(p) for p in ctx.val.inputs} if config["load"].val_path else None
        echo(f"doctor: {len(paths)} photos, out-of-fold probe over {folds} folds")
        features = backbone_features(ctx, config, paths)
    names = ctx.class_names
    grid = C_GRID if probe_c is None else (probe_c,)
    probs, chosen = calibrated_probabilities(features, labels, len(names), folds, config.seed, grid)
    diagnosis = Diagnosis(data=str(data), backbone=f"frozen {config['model'].backbone}", folds=folds,
                          class_counts={name: labels.count(i) for i, name in enumerate(names)}, probe_c=chosen,
                          probe_accuracy=float(np.mean(np.argmax(probs, axis=1) == np.asarray(labels))))
    label_errors, diagnosis.label_scores = label_findings(paths, labels, probs, names)
    diagnosis.findings += label_errors
    split_of = ["val" if p in held_out else "train" for p in paths] if held_out is not None else None
    diagnosis.findings += duplicate_findings(paths, labels, names, features, near_bits, cosine, split_of)
    diagnosis.findings += [Finding(canonical(item["path"]), "unreadable", item["reason"], "fix or delete the file")
                           for item in ctx.report["data"]["skipped"]]
    diagnosis.findings += imbalance_findings(diagnosis.class_counts, str(config["load"].path))
    return diagnosis


def backbone_features(ctx: Any, config: Any, paths: list[str]) -> np.ndarray:
    """The frozen backbone's pooled features of each photo: the image task's cached features when the backbone is
    pretrained (a second doctor run into the same folder reuses them), computed afresh otherwise."""
    from dlpipe.data.datasets import decoded_images
    from dlpipe.models.classifier import BACKBONE_LAYER_NAME
    from dlpipe.models.probe import extract_features, feature_model
    from dlpipe.pipelines.image_classify.train import ImageTrainStage

    layer = ctx.fine_tuning.layer if ctx.fine_tuning else BACKBONE_LAYER_NAME
    extractor = feature_model(ctx.model, layer)
    if ctx.fine_tuning is not None:
        return np.asarray(ImageTrainStage(config["train"]).features(ctx, extractor, paths))
    images = decoded_images(paths, None, ctx.preprocessing, cache=False)
    return extract_features(extractor, images.batch(config["train"].batch_size))


def out_of_fold_probabilities(features: np.ndarray, labels: Sequence[int], num_classes: int, folds: int,
                              c: float, seed: int) -> np.ndarray:
    """Class probabilities of each photo from a logistic-regression probe fitted on the other folds only."""
    from dlpipe.data.split import stratified_folds
    from dlpipe.models.probe import fit_logistic, predict_logistic

    fold_of = np.asarray(stratified_folds(labels, folds, seed))
    y = np.asarray(labels)
    probs = np.zeros((len(y), num_classes))
    for fold in range(folds):
        held = fold_of == fold
        if held.any():
            kernel, bias = fit_logistic(features[~held], y[~held], num_classes, c, seed)
            probs[held] = predict_logistic(features[held], kernel, bias)
    return probs


def calibrated_probabilities(features: np.ndarray, labels: Sequence[int], num_classes: int, folds: int, seed: int,
                             grid: Sequence[float] = C_GRID) -> tuple[np.ndarray, float]:
    """Out-of-fold probabilities at the probe strength with the lowest out-of-fold log-loss, and that strength.

    Confident learning trusts the probabilities' scale: an over-confident probe (weak L2) pushes honest but
    unusual photos past the thresholds. The log-loss is of the labels as given, so nothing planted or known is used.
    """
    y = np.asarray(labels)
    best: tuple[float, np.ndarray, float] | None = None
    for c in grid:
        probs = out_of_fold_probabilities(features, labels, num_classes, folds, c, seed)
        loss = float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12)))
        if best is None or loss < best[0]:
            best = (loss, probs, c)
    assert best is not None
    return best[1], best[2]


def label_findings(paths: list[str], labels: list[int], probs: np.ndarray,
                   names: list[str]) -> tuple[list[Finding], list[dict[str, Any]]]:
    """Confident learning (cleanlab): photos whose out-of-fold probability of their own class is below that class's
    threshold while another class is confidently predicted; most suspicious (lowest self-confidence) first."""
    from cleanlab.filter import find_label_issues

    ranked = find_label_issues(labels=np.asarray(labels), pred_probs=probs, n_jobs=1,
                               return_indices_ranked_by="self_confidence")
    findings, scores = [], []
    for index in ranked:
        given, guess = labels[index], int(np.argmax(probs[index]))
        detail = (f"in {names[given]}/ but looks like {names[guess]} (out-of-fold probability {probs[index, guess]:.2f};"
                  f" of {names[given]}: {probs[index, given]:.2f})")
        findings.append(Finding(paths[index], "label_error", detail, f"move it to {names[guess]}/ or delete it"))
        scores.append({"path": paths[index], "given": names[given], "predicted": names[guess],
                       "confidence": float(probs[index, guess])})
    return findings, scores


def copy_findings(group: list[int], classes_of: list[str], mixed: Callable[[int, list[int], list[str]], Finding],
                  same: Callable[[int, int], Finding]) -> list[Finding]:
    """Findings for one group of copies (indexes): every copy, by `mixed(index, other indexes, classes)`, when the
    copies carry two or more classes; else every copy after the first, by `same(index, first index)`."""
    classes = sorted({classes_of[i] for i in group})
    if len(classes) > 1:
        return [mixed(index, [j for j in group if j != index], classes) for index in group]
    return [same(index, group[0]) for index in group[1:]]


def duplicate_findings(paths: list[str], labels: list[int], names: list[str], features: np.ndarray,
                       near_bits: int, cosine: float | None, split_of: list[str] | None = None) -> list[Finding]:
    """Exact copies (same bytes), near copies (perceptual hash, optional feature cosine), copies in two classes, and,
    when `split_of` says which photos are in load.val_path ("val"), copies on both sides of that split."""
    from dlpipe.data.duplicates import cosine_pairs, difference_hash, exact_groups, near_pairs

    findings: list[Finding] = []
    exact_pairs = set()
    for group in exact_groups(paths):
        exact_pairs |= {(i, j) for i in group for j in group if i < j}
        findings += copy_findings(
            group, [names[label] for label in labels],
            mixed=lambda index, others, classes: Finding(
                paths[index], "cross_class_duplicate", f"same bytes in {', '.join(classes)}: "
                f"{', '.join(paths[j] for j in others)}", "keep the copy in the right class, delete the other"),
            same=lambda index, first: Finding(paths[index], "exact_duplicate", f"same bytes as {paths[first]}",
                                              "delete this copy"))
    near = {(i, j): f"{bits} of 64 perceptual-hash bits differ" for i, j, bits in
            near_pairs([difference_hash(p) for p in paths], near_bits)}
    if cosine is not None:
        for i, j, similarity in cosine_pairs(features, cosine):
            near.setdefault((i, j), f"feature cosine similarity {similarity:.3f}")
    for (i, j), how in sorted(near.items()):
        if (i, j) in exact_pairs:
            continue
        if labels[i] != labels[j]:
            for a, b in ((i, j), (j, i)):
                findings.append(Finding(paths[a], "cross_class_duplicate", f"near copy ({how}) of {paths[b]} in "
                                        f"{names[labels[b]]}/", "keep the copy in the right class, delete the other"))
        else:
            findings.append(Finding(paths[j], "near_duplicate", f"near copy ({how}) of {paths[i]}",
                                    "delete it unless it adds a real variation"))
    return findings + (split_findings(paths, split_of, exact_pairs | set(near)) if split_of else [])


def split_findings(paths: list[str], split_of: list[str], pairs: Iterable[tuple[int, int]]) -> list[Finding]:
    """The validation copy of each photo in both the training and the validation folder: it is scored on a photo
    the model trained on, which inflates every validation figure."""
    findings = []
    for i, j in sorted(pairs):
        if split_of[i] != split_of[j]:
            held, seen = (i, j) if split_of[i] == "val" else (j, i)
            findings.append(Finding(paths[held], "split_duplicate", f"validation photo, copy of training photo "
                                    f"{paths[seen]}", "delete the validation copy (it inflates validation figures)"))
    return findings


def imbalance_findings(counts: dict[str, int], root: str) -> list[Finding]:
    """Classes with under 1/IMBALANCE_RATIO of the largest class's photos."""
    largest = max(counts.values(), default=0)
    return [Finding(str(Path(root) / name), "class_imbalance",
                    f"{count} photos against {largest} in the largest class",
                    "add photos of this class or set train.class_weight=balanced")
            for name, count in counts.items() if count * IMBALANCE_RATIO < largest]
