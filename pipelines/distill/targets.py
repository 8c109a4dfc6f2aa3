"""Stage `distill` (distill pipeline): the teacher's soft labels over the training and unlabelled texts.

Runs after `load`, so the teacher sees only the training split (plus the unlabelled texts), never the
validation split. The unlabelled texts join the training examples with the teacher's top label as their
label (for counts and reports only: they train on the soft targets alone). The targets are saved in the run
folder (`distill_targets.npz`), where the train stage reads them and a reader can check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dlpipe.pipelines.config import option, require
from dlpipe.pipelines.stage import RunContext, Stage

TARGETS_FILE = "distill_targets.npz"
TEACHER_BATCH = 64


@dataclass(frozen=True)
class DistillConfig:
    """The teacher run, the unlabelled texts, and how its probabilities become the student's targets."""

    teacher: str | None = option(None, "finished sentiment run folder whose model teaches (TEACHER_RUN)")
    teacher_artifact: str = option("auto", "which of the teacher's artifacts answers: auto (the fastest faithful "
                                           "one), keras, tflite, ... (as dlpipe predict --artifact)")
    unlabelled: str | None = option(None, "file of texts without labels (--unlabelled): one text a line (.txt), "
                                          "the text column of a .tsv/.csv, or .jsonl with \"text\"")
    temperature: float = option(1.0, "soften the teacher's probabilities: softmax(log p / T); 1 keeps them")
    alpha: float = option(0.5, "weight of the hard label in the target of a labelled text (alpha * one-hot + "
                               "(1 - alpha) * teacher); unlabelled texts take the teacher's alone")

    def __post_init__(self) -> None:
        require(self.temperature > 0, "temperature", f"must be above 0. Received: {self.temperature}")
        require(0.0 <= self.alpha <= 1.0, "alpha", f"must be in [0, 1]. Received: {self.alpha}")


def check_teacher(folder: str | None) -> Any:
    """The teacher's side files (labels, preprocessing); a one-line error unless it is a finished text run."""
    from dlpipe.errors import ConfigError, DataError
    from dlpipe.models import artifacts

    if not folder:
        raise ConfigError("distill.teacher", "no teacher given; dlpipe distill TEACHER_RUN --data FILE")
    path = Path(folder)
    if not path.is_dir() or not (path / artifacts.LABELS_FILE).is_file() or not (path / artifacts.PREPROCESSING_FILE).is_file():
        raise DataError(str(path), "is not a finished dlpipe run folder (no labels.txt and preprocessing.json); give "
                                   "the folder of a finished `dlpipe run sentiment` run")
    side = artifacts.read_side_files(path)
    if side.task != "text":
        raise DataError(str(path), f"is a {side.task} run, not a text run; the teacher must be a sentiment run "
                                   "(dlpipe run sentiment --data FILE)")
    return side


def read_unlabelled(path: str) -> list[str]:
    """The texts of an unlabelled file; an empty or non-UTF-8 file is a one-line error naming it and the fix."""
    from dlpipe.data.text import read_unlabelled_texts
    from dlpipe.errors import DataError

    rows = read_unlabelled_texts(path)
    bad = [(key, error) for key, text, error in rows if text is None]
    if bad:
        key, error = bad[0]
        raise DataError(key, f"{error}; {len(bad)} line(s) unreadable: save the unlabelled file as UTF-8 text, one "
                             "text a line")
    texts = [text.strip() for _, text, _ in rows if text and text.strip()]
    if not texts:
        raise DataError(str(path), "holds no texts; give a file with one text a line (or a .tsv/.csv whose first "
                                   "column is the text)")
    return texts


def soft_targets(teacher_probs: Any, labels: list[int], labelled: int, temperature: float, alpha: float) -> Any:
    """Targets (N, classes): softmax(log p / T) of the teacher, mixed with the one-hot label for the first
    `labelled` rows (alpha of the one-hot), the teacher's alone for the rest."""
    import numpy as np

    logs = np.log(np.clip(teacher_probs.astype(np.float64), 1e-12, 1.0)) / temperature
    soft = np.exp(logs - logs.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    hard = np.eye(soft.shape[1])[np.asarray(labels[:labelled], dtype=int)]
    soft[:labelled] = alpha * hard + (1.0 - alpha) * soft[:labelled]
    return soft.astype(np.float32)


def teacher_probabilities(runtime: Any, texts: list[str], class_names: list[str], teacher: str,
                          echo: Callable[[str], None] = print) -> Any:
    """The teacher's probabilities over `texts`, columns in the student's class order (progress every 1,024
    texts: a large teacher on a CPU takes minutes)."""
    import time

    import numpy as np

    from dlpipe.errors import DataError

    if sorted(runtime.class_names) != sorted(class_names):
        raise DataError(teacher, f"the teacher's labels {runtime.class_names} differ from the data's {class_names}; "
                                 "distil on data with the teacher's labels (or set load.labels)")
    order = [runtime.class_names.index(name) for name in class_names]
    out, start = [], time.time()
    for first in range(0, len(texts), TEACHER_BATCH):
        out.append(np.asarray(runtime.predict(texts[first:first + TEACHER_BATCH]))[:, order])
        done = first + TEACHER_BATCH
        if done % 1024 == 0 and done < len(texts):
            echo(f"  teacher: {done:,} of {len(texts):,} texts ({time.time() - start:.0f} s)")
    return np.concatenate(out).astype(np.float32)


class TeacherTargetsStage(Stage):
    """Add the unlabelled texts to the training split and compute every training text's soft target."""

    config_cls = DistillConfig

    def preflight(self) -> None:
        check_teacher(self.config.teacher)
        if self.config.unlabelled:
            read_unlabelled(self.config.unlabelled)

    def run(self, ctx: RunContext) -> str:
        import numpy as np

        from dlpipe import atomic
        from dlpipe.models.runtimes import load_runtime
        from dlpipe.pipelines.stage import Examples

        cfg = self.config
        check_teacher(cfg.teacher)
        train = ctx.need("train", "load")
        extra = read_unlabelled(cfg.unlabelled) if cfg.unlabelled else []
        runtime = load_runtime(cfg.teacher, cfg.teacher_artifact)
        texts = list(train.inputs) + extra
        probs = teacher_probabilities(runtime, texts, ctx.class_names, str(cfg.teacher), ctx.echo)
        targets = soft_targets(probs, list(train.labels), len(train), cfg.temperature, cfg.alpha)
        ctx.train = Examples(texts, list(train.labels) + probs[len(train):].argmax(axis=1).tolist())
        with atomic.replacing_file(ctx.out_dir / TARGETS_FILE) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, targets=targets, teacher=probs, labelled=np.int64(len(train)),
                         labels=np.asarray(list(train.labels) + [-1] * len(extra), dtype=np.int64))
        agree = float(np.mean(probs[:len(train)].argmax(axis=1) == np.asarray(train.labels))) if len(train) else 0.0
        ctx.report["distill"] = {"teacher": str(cfg.teacher), "teacher_artifact": str(runtime.path),
                                 "unlabelled": cfg.unlabelled, "unlabelled_texts": len(extra),
                                 "labelled_texts": len(train), "temperature": cfg.temperature, "alpha": cfg.alpha,
                                 "teacher_train_accuracy": round(agree, 4)}
        return (f"teacher {runtime.path.name} ({runtime.format}) labelled {len(texts)} texts: {len(train)} training "
                f"(it agrees with {agree:.1%} of their labels) + {len(extra)} unlabelled; T={cfg.temperature}, "
                f"alpha={cfg.alpha}")
