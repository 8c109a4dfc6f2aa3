"""Temperature scaling in a classification run: which held-out predictions T is fitted on, and what is recorded.

T is fitted only on predictions of examples the predicting weights never
trained on: the out-of-fold predictions of a cross-validation (`train.cv_folds`,
each photo predicted by the fold model that did not train on it) when the run
has them, else the validation predictions of the weights selected before any
refit. It is then folded into the shipped model's softmax head
(`dlpipe.models.calibration.fold_temperature`), so every export returns
calibrated scores; answers (the top class) never change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dlpipe import atomic
from dlpipe.errors import ConfigError
from dlpipe.models.calibration import as_logits, calibration_summary, fit_temperature, softmax_head, tempered

OUTPUTS_FILE = "validation_outputs.npz"  # the evaluated model's log-probabilities on its validation split
RELIABILITY_PLOT = "reliability.png"
MIN_AUTO_COUNT = 30  # calibrate: auto fits T only on at least this many held-out predictions (fewer: noise)


def view_outputs_model(model: Any) -> Any:
    """A model returning each view's probabilities (a test-time-flip model: plain and mirrored), else `model`."""
    import keras

    names = [layer.name for layer in model.layers]
    if "tta_mean" not in names:
        return model
    return keras.Model(model.inputs, list(model.get_layer("tta_mean").input), name=f"{model.name}_views")


def view_logits(outputs: Any) -> np.ndarray:
    """(N, classes) log-probabilities, or (views, N, classes) for a model that averages views."""
    if isinstance(outputs, (list, tuple)):
        return np.stack([as_logits(view) for view in outputs])
    return as_logits(outputs)


def save_outputs(out_dir: Path, logits: np.ndarray, labels: list[int], inputs: list[str]) -> None:
    """Keep the validation predictions with their inputs, so the final run of a cross-validation can pool its folds'
    (calibration) and the run's data doctor can name the examples they flag."""
    with atomic.replacing_file(out_dir / OUTPUTS_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, logits=logits.astype(np.float32), labels=np.asarray(labels, np.int64),
                 inputs=np.asarray(inputs, dtype=np.str_))


def out_of_fold(out_dir: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The pooled held-out predictions of this run's cross-validation folds (OUT/folds/K/), or None."""
    from dlpipe.pipelines.training.crossval import FOLDS_DIR

    folds = sorted(path for path in (out_dir / FOLDS_DIR).glob("*") if path.is_dir())
    if not folds or not all((fold / OUTPUTS_FILE).is_file() for fold in folds):
        return None
    parts = []
    for fold in folds:
        with np.load(fold / OUTPUTS_FILE) as saved:
            parts.append((saved["logits"], saved["labels"]))
    if len({logits.shape[:-2] + logits.shape[-1:] for logits, _ in parts}) != 1:
        return None  # folds of different shapes (views or classes) cannot be pooled
    return (np.concatenate([logits for logits, _ in parts], axis=-2),
            np.concatenate([labels for _, labels in parts]), len(folds))


def calibrate(ctx: Any, setting: bool | str, logits: np.ndarray, labels: list[int]) -> dict[str, Any] | None:
    """Fit T on held-out predictions and fold it into `ctx.model`: the record metrics.json keeps (with `skipped`
    and no temperature when nothing was fitted), or None when calibration is off."""
    if setting is False:
        return None
    pooled = out_of_fold(ctx.out_dir)
    if pooled is not None:
        fit_logits, fit_labels, folds = pooled
        source = (f"out-of-fold predictions of the {folds} cross-validation fold models (each example predicted by "
                  "the fold model that did not train on it)")
    else:
        fit_logits, fit_labels = logits, np.asarray(labels, np.int64)
        source = ("validation predictions of the weights selected before the refit on train + validation"
                  if ctx.selected_weights is not None else "validation predictions of the shipped weights")
    if softmax_head(ctx.model) is None:
        if setting == "auto":
            return _skipped(ctx, "the model does not end in a Dense softmax layer")
        raise ConfigError("evaluate.calibrate", "this model does not end in a Dense softmax layer, so a temperature "
                                                "cannot be built into it; set evaluate.calibrate=false")
    if setting == "auto" and len(fit_labels) < MIN_AUTO_COUNT:
        return _skipped(ctx, f"{len(fit_labels)} held-out predictions, fewer than {MIN_AUTO_COUNT} "
                             "(evaluate.calibrate=true fits a temperature anyway)")
    wrong = int(np.sum(tempered(fit_logits, 1.0).argmax(axis=1) != fit_labels))
    if not wrong:
        return _skipped(ctx, f"all {len(fit_labels)} held-out predictions are right, so the likelihood grows as T "
                             "shrinks without end: there is no temperature to fit (cross-validation, "
                             "train.cv_folds, gives more held-out predictions)")
    from dlpipe.models.calibration import fold_temperature

    temperature = fit_temperature(fit_logits, fit_labels)
    record = calibration_summary(fit_logits, fit_labels, temperature)
    fold_temperature(ctx.model, temperature)
    record["source"] = source
    record["note"] = ("ECE: 15 equal-width bins of the top score, before (T = 1) and after on the predictions T was "
                      "fitted on. T divides the logits of the exported model's softmax head, so every export returns "
                      "these calibrated scores; the predicted classes do not change.")
    if ctx.selected_weights is not None or pooled is not None:
        record["note"] += (" The weights that made these predictions are not the shipped ones (fold models, or the "
                           "model selected before the refit), so the shipped model's calibration is close to, not "
                           "exactly, the one measured here.")
    return record


def _skipped(ctx: Any, reason: str) -> dict[str, Any]:
    ctx.echo(f"  calibration skipped: {reason}")
    return {"skipped": reason}
