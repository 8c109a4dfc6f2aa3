"""A multi-label classifier read off a detector's class heat map: a label's score is its highest peak in the photo.

Why: when the labels come with boxes (a COCO file), a detector learns *where* each labelled thing is, and a photo
shows a label exactly when the detector finds one. On the 300 fashion scenes, the scene labels read off the detect
task's 5-fold models (a label's score = its best box's) scored micro-F1 0.921 with thresholds chosen on the other
folds, against 0.834 for the photo-level lse head (BENCHMARKS.md, "Multi-label images"). The classifier is the
detector's encoder, neck and class head (pixels in [0, 255] -> heat-map logits (N, S/4, S/4, labels)), a global
maximum over locations and a sigmoid: builtin ops in every export, the box head left out.

Training fits a wrapper (`heatmap_supervised_model`) that shares these layers, keeps the box head, and adds the
detector's CenterNet loss (`models/centernet_loss.py`) on the whole head map beside the photo-level loss.
"""

from __future__ import annotations

import keras

HEAT_LOGITS_LAYER = "heatmap_out"  # the detectors' class head (models/detector.py, models/centernet_start.py)
PEAK_LAYER = "label_peaks"
SUPERVISION_LAYER = "heatmap_supervision"


def heatmap_classifier(detector: keras.Model, name: str = "heatmap_multilabel") -> keras.Model:
    """The detector's pixels -> each label's sigmoid at its highest heat-map logit anywhere (shares its layers)."""
    from dlpipe.models.probe import HEAD_LAYER

    logits = detector.get_layer(HEAT_LOGITS_LAYER).output
    peaks = keras.layers.GlobalMaxPooling2D(name=PEAK_LAYER)(logits)
    scores = keras.layers.Activation("sigmoid", dtype="float32", name=HEAD_LAYER)(peaks)
    return keras.Model(detector.input, scores, name=name)


@keras.saving.register_keras_serializable(package="dlpipe")
class HeatmapSupervision(keras.layers.Layer):
    """Adds `weight` x the CenterNet loss of the head map against its targets; returns the scores unchanged."""

    def __init__(self, num_classes: int, weight: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        from dlpipe.models.centernet_loss import CenterNetLoss

        self.num_classes = int(num_classes)
        self.weight = float(weight)
        self._loss = CenterNetLoss(self.num_classes)

    def call(self, inputs: list) -> keras.KerasTensor:
        head_map, targets, scores = inputs
        self.add_loss(self.weight * self._loss(targets, keras.ops.cast(head_map, "float32")))
        return scores

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "weight": self.weight}


def heatmap_supervised_model(detector: keras.Model, classifier: keras.Model, weight: float = 1.0) -> keras.Model:
    """The model to fit: inputs (photo, CenterNet targets (S/4, S/4, labels + 5)), output the classifier's scores;
    the detector's head map (boxes included) learns from the targets."""
    head_map = detector.output
    classes = int(classifier.output.shape[-1])
    targets = keras.Input(shape=tuple(head_map.shape[1:3]) + (classes + 5,), name="heatmap_targets")
    scores = HeatmapSupervision(classes, weight, name=SUPERVISION_LAYER)([head_map, targets, classifier.output])
    return keras.Model([detector.input, targets], scores, name=classifier.name)


__all__ = ["HEAT_LOGITS_LAYER", "HeatmapSupervision", "heatmap_classifier", "heatmap_supervised_model"]
