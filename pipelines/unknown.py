"""The "unknown" answer in an image-classify run: which held-out photos choose the threshold, what is recorded.

The score is the cosine similarity of a photo's pooled backbone features to the
nearest class mean of the shipped model's training photos (`dlpipe.models.unknown`).
The threshold keeps `evaluate.unknown_keep` of in-distribution photos the means
(and, for a trained backbone, the weights) never saw:

- a frozen pretrained backbone (the default run): out-of-fold scores of every
  training photo (5 stratified folds; each photo against the other folds' means),
  since its features do not depend on the training labels;
- a backbone that trained (fine-tuning, or from scratch): the validation photos
  against the training split's means, through the weights selected before any refit.

Outlier photos never choose it. `UnknownGate` then appends the "unknown" column
to the shipped model and "unknown" to its labels, so predict, serve, every
export and MediaPipe answer it alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dlpipe.errors import ConfigError

MIN_AUTO_COUNT = 50  # unknown: auto needs at least this many held-out photos (fewer: the 3% tail is one photo)
FOLDS = 5
SCORE = "cosine similarity of the pooled backbone features to the nearest training class mean"


def attach_unknown(ctx: Any, setting: bool | str, keep: float, batch_size: int) -> dict[str, Any] | None:
    """Choose the threshold, wrap `ctx.model` with the gate and add the label: the record metrics.json keeps
    (`skipped` with the reason when auto decided against it), or None when the setting is false."""
    from dlpipe.models.classifier import BACKBONE_LAYER_NAME
    from dlpipe.models.unknown import UNKNOWN_LABEL

    if setting is False:
        return None
    names = [layer.name for layer in ctx.model.layers]
    why_not = None
    if BACKBONE_LAYER_NAME not in names:
        why_not = "the shipped model has no backbone layer of its own (evaluate.tta=flip wraps it)"
    elif UNKNOWN_LABEL in ctx.class_names:
        why_not = f"a class is already named {UNKNOWN_LABEL!r}"
    elif setting == "auto" and ctx.fine_tuning is None:
        why_not = ("the backbone trained from scratch on these photos only, so its features say little about other "
                   "subjects (evaluate.unknown=true adds it anyway)")
    if why_not:
        return _refuse(ctx, setting, why_not)
    frozen = ctx.fine_tuning is not None and not any(
        phase.get("name") == "finetune" and phase.get("history") for phase in ctx.history.get("phases", []))
    bank = _bank_features(ctx, batch_size, frozen)
    held, source = _held_out_scores(ctx, frozen, bank, batch_size)
    if len(held) < (MIN_AUTO_COUNT if setting == "auto" else 1):
        return _refuse(ctx, setting, f"{len(held)} held-out photos, fewer than {MIN_AUTO_COUNT}")
    return _ship(ctx, held, source, keep, bank)


def _held_out_scores(ctx: Any, frozen: bool, bank: tuple[np.ndarray, np.ndarray],
                     batch_size: int) -> tuple[np.ndarray, str]:
    from dlpipe.models.unknown import class_mean_similarity, class_means, held_out_similarity

    if frozen:
        x, y = bank
        return (held_out_similarity(x, y, FOLDS, ctx.seed),
                f"out-of-fold scores of the {len(y)} photos the class means are made of ({FOLDS} stratified folds, "
                "each photo against the other folds' means; the backbone is frozen, so its features never trained)")
    if not len(ctx.val):
        return np.zeros(0), "no validation photos"
    from dlpipe.pipelines.stages.evaluate import outputs_before_refit

    extractor = _extractor(ctx.model)
    train_x = (bank[0] if ctx.selected_weights is None  # no refit: the bank is the training split, these weights
               else outputs_before_refit(ctx, ctx.model, extractor, _batches(ctx.train_data, batch_size)))
    val_x = outputs_before_refit(ctx, ctx.model, extractor, _batches(ctx.val_data, batch_size))
    scores = class_mean_similarity(val_x, class_means(train_x, ctx.train.labels))
    weights = "the shipped weights"
    if ctx.selected_weights is not None:
        weights = ("the weights selected before the refit (the shipped, refitted weights' feature space is close to "
                   "theirs, not the same, so the shipped keep share is close to, not exactly, the one measured)")
    return scores, (f"the {len(scores)} validation photos against the training split's class means, through "
                    f"{weights}; the backbone trained, so only photos it never saw are held out")


def _ship(ctx: Any, held: np.ndarray, source: str, keep: float, bank: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    from dlpipe.models.unknown import UNKNOWN_LABEL, class_means, threshold_for, with_unknown

    threshold = threshold_for(held, keep)
    x, y = bank
    means = class_means(x, y)
    ctx.model = with_unknown(ctx.model, _features_tensor(ctx.model), means, threshold)
    ctx.class_names = [*ctx.class_names, UNKNOWN_LABEL]
    kept = float(np.mean(held >= threshold))
    ctx.echo(f"  unknown below {threshold:.4f} ({SCORE}): {kept:.1%} of {len(held)} held-out photos kept")
    return {"label": UNKNOWN_LABEL, "score": SCORE, "threshold": threshold, "keep_target": keep, "kept": kept,
            "count": int(len(held)), "source": source, "means_of": int(len(y)),
            "note": ("The check is inside the exported model (an extra 'unknown' output, 1 below the threshold, "
                     "with every class then 0), so predict, serve, every export and MediaPipe answer it alike. "
                     "The threshold was chosen from in-distribution photos only.")}


def _bank_features(ctx: Any, batch_size: int, frozen: bool) -> tuple[np.ndarray, np.ndarray]:
    """Features (shipped weights) and labels of the photos the shipped model trained on (train, + validation
    after a refit); a frozen backbone's come from the train stage's cache (OUT/features/), computed once."""
    from dlpipe.pipelines.image_classify.train import cached_backbone_features

    sets = [ctx.train] + ([ctx.val] if ctx.selected_weights is not None and len(ctx.val) else [])
    labels = np.concatenate([np.asarray(examples.labels, int) for examples in sets])
    extractor = _extractor(ctx.model)
    if frozen:
        return cached_backbone_features(ctx, extractor, [p for e in sets for p in e.inputs], batch_size), labels
    data = [ctx.train_data] + ([ctx.val_data] if len(sets) > 1 else [])
    return np.concatenate([extractor.predict(_batches(d, batch_size), verbose=0) for d in data]), labels


def _features_tensor(model: Any) -> Any:
    """The pooled backbone features in `model`'s graph: the input of the layer after the backbone."""
    from dlpipe.models.classifier import BACKBONE_LAYER_NAME

    names = [layer.name for layer in model.layers]
    return model.layers[names.index(BACKBONE_LAYER_NAME) + 1].input


def _extractor(model: Any) -> Any:
    import keras

    return keras.Model(model.inputs, _features_tensor(model), name="unknown_features")


def _batches(decoded: Any, batch_size: int) -> Any:
    """Images only, batched, from a decoded (image, label) dataset."""
    return decoded.map(lambda image, label: image).batch(batch_size)


def _refuse(ctx: Any, setting: bool | str, reason: str) -> dict[str, Any]:
    if setting is True:
        raise ConfigError("evaluate.unknown", f"cannot add the unknown answer: {reason}; set evaluate.unknown=false")
    ctx.echo(f"  unknown answer skipped: {reason}")
    return {"skipped": reason}
