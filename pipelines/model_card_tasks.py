"""The task-specific half of MODEL_CARD.md: what the model does, how it scored, what it must not be used for.

Each task measures different things (accuracy for a classifier, mAP per label for multi-label, COCO mAP for a
detector, mean IoU for segmentation, Fréchet distance for a GAN), so each gets its own Task, Metrics, Threshold
and Use text; pipelines/model_card.py composes them with the sections every task shares (data, artifacts,
pretrained weights, reproduce).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Section = Callable[..., str]

INPUTS = {"image": "photos", "text": "texts", "multilabel": "photos", "detect": "photos", "segment": "photos"}
HARM = "- Not for decisions about people, or where a wrong answer causes harm, without a person checking."


@dataclass(frozen=True)
class TaskCard:
    """The four task-specific sections: each takes (config, metrics, report, cv) and returns Markdown."""

    task: Section
    metrics: Section
    threshold: Section
    use: Section


def _names(metrics: dict[str, Any]) -> str:
    return ", ".join(f"`{name}`" for name in metrics.get("class_names") or [])


def _interval(metrics: dict[str, Any], key: str) -> str:
    bounds = metrics.get(f"{key}_interval")
    return f" (95% interval {bounds[0]:.3f}-{bounds[1]:.3f})" if bounds and None not in bounds else ""


def _model_line(config: dict[str, Any], report: dict[str, Any]) -> str:
    model = config.get("model", {})
    built = ", ".join(f"{key} {model[key]}" for key in ("backbone", "encoder", "weights", "mode", "architecture",
                                                          "embeddings", "image_size", "inference_scale", "latent_dim")
                      if model.get(key) not in (None, ""))
    versions = report.get("versions", {})
    return (f"Model: {built or 'see config.yaml'}. Task `{config.get('task', report.get('task', '?'))}`, dlpipe "
            f"{versions.get('dlpipe', '?')}, TensorFlow {versions.get('tensorflow', '?')}, Keras "
            f"{versions.get('keras', '?')}.")


def _not_evaluated(metrics: dict[str, Any], key: str) -> str | None:
    return None if metrics.get(key) is not None else "## Metrics\n\nNo metrics.json: the run was not evaluated."


def _cv_line(cv: dict[str, Any], key: str, label: str) -> str:
    if not cv:
        return "No cross-validation (train.cv_folds=0): the figures above rest on one validation split."
    pooled = cv.get("pooled", {})
    return (f"Cross-validation ({cv.get('folds')} folds): {label} {cv.get(f'{key}_mean', 0):.3f} ± "
            f"{cv.get(f'{key}_sd', 0):.3f} (mean ± sd over folds); pooled {label} {pooled.get(key, 0):.3f}"
            f"{_interval(pooled, key)} on {pooled.get('count')} photos, every photo predicted by the fold model that "
            "did not train on it: the estimate to trust.")


def _use(what: str, count: Any, answers: str, limits: list[str]) -> str:
    return (f"## Intended use and limits\n\n{what} like the training data ({count} examples from one source), "
            f"answering {answers}. Limits:\n" + "\n".join(limits) +
            "\n- The figures and their intervals hold for inputs like the validation examples (same source, same "
            "kind); expect less on another source, and measure it there (`dlpipe evaluate ARTIFACT DATA`).\n" + HARM)


# single-label classifiers (image, text)

def classifier_task(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    what = INPUTS.get(config.get("task", ""), "inputs")
    return (f"## Task\n\nSingle-label classification of {what} into {len(metrics.get('class_names') or [])} classes: "
            f"{_names(metrics)}.\n\n{_model_line(config, report)}")


def _tta_line(metrics: dict[str, Any]) -> list[str]:
    """The card's line on test-time augmentation, when the evaluated and shipped model does it."""
    if metrics.get("tta") and metrics["tta"] != "none":
        return [f"Test-time augmentation: {metrics['tta']} (built into the model)."]
    return []


def classifier_metrics(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    if "accuracy" not in metrics:
        return "## Metrics\n\nNo metrics.json: the run was not evaluated."
    lines = ["## Metrics", "", f"Validation accuracy {metrics['accuracy']:.3f}"
             + _interval(metrics, "accuracy").replace("95% interval", "95% Wilson interval")
             + f" on {metrics.get('count')} examples; macro F1 {metrics.get('macro_f1', float('nan')):.3f}."]
    if metrics.get("refit"):
        lines.append(f"The shipped weights were refitted on train + validation ({metrics['refit'].get('examples')} "
                     "examples); the accuracy above is the model selected before the refit, on examples it never "
                     "trained on.")
    lines += _tta_line(metrics)
    per_class = metrics.get("per_class", {})
    if per_class:
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
                  for name, row in per_class.items()]
    if cv:
        pooled = cv.get("pooled", {})
        lines += ["", f"Cross-validation ({cv.get('folds')} folds): accuracy {cv.get('accuracy_mean', 0):.3f} ± "
                      f"{cv.get('accuracy_sd', 0):.3f} (mean ± sd over folds); pooled {pooled.get('correct')}/"
                      f"{pooled.get('count')} = {pooled.get('accuracy', 0):.3f}{_interval(pooled, 'accuracy')},"
                      " every example predicted by the fold model that did not train on it: the estimate to trust."]
    else:
        lines += ["", _cv_line(cv, "accuracy", "accuracy")]
    return "\n".join(lines)


def classifier_threshold(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    unknown = metrics.get("unknown") or {}
    if "threshold" in unknown:
        return (f"## Threshold: the unknown answer\n\nThe model answers `{unknown['label']}` (its last label) when "
                f"the {unknown['score']} is below {unknown['threshold']:.4f}. That threshold keeps "
                f"{unknown['kept']:.1%} (target {unknown['keep_target']:.0%}) of {unknown['count']} in-distribution "
                f"photos it was chosen on: {unknown['source']}. No out-of-distribution photo chose it. The check is "
                "inside every exported file, so every runtime (MediaPipe too) answers it alike; expect about "
                f"{1 - unknown['keep_target']:.0%} of photos of these classes to be answered unknown.")
    threshold = metrics.get("threshold")
    if threshold:
        return f"## Threshold\n\n```json\n{json.dumps(threshold, indent=2)}\n```"
    skipped = f" (the unknown answer was skipped: {unknown['skipped']})" if "skipped" in unknown else ""
    return ("## Threshold\n\nNone: every input gets the class with the highest score, whatever the input; a score is "
            f"not a test of whether the input belongs to any of these classes{skipped}.")


def classifier_use(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    what = INPUTS.get(config.get("task", ""), "inputs")
    count = sum(report.get("data", {}).get("classes", {}).values()) or "?"
    return _use(f"Sorting {what}", count, f"one of {', '.join(metrics.get('class_names') or []) or 'its classes'}",
                ["- It always answers one of these classes: an input of something else still gets one, often with a "
                 "high score.",
                 "- A small validation split gives a wide interval: read the interval (and the cross-validation, if "
                 "any), not the single figure."])


# multi-label photos

def multilabel_task(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    return (f"## Task\n\nMulti-label classification of photos: each photo gets every label whose score passes that "
            f"label's threshold (none, one or several) among {len(metrics.get('class_names') or [])}: "
            f"{_names(metrics)}.\n\n{_model_line(config, report)}")


def multilabel_metrics(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    if "micro_f1" not in metrics:
        return "## Metrics\n\nNo metrics.json: the run was not evaluated."
    head = (f"mAP {metrics['map']:.3f}{_interval(metrics, 'map')}, " if metrics.get("map") is not None else "")
    lines = ["## Metrics", "", f"Validation {head}micro F1 {metrics['micro_f1']:.3f}{_interval(metrics, 'micro_f1')},"
             f" macro F1 {metrics.get('macro_f1', float('nan')):.3f} on {metrics.get('count')} photos."]
    if metrics.get("note"):
        lines.append(metrics["note"])
    lines += _tta_line(metrics)
    per_label = metrics.get("per_label", {})
    if per_label:
        lines += ["", "| label | AP | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {name} | {_num(row.get('ap'))} | {_num(row.get('precision'))} | {_num(row.get('recall'))} | "
                  f"{_num(row.get('f1'))} | {row.get('support')} |" for name, row in per_label.items()]
    if cv:
        pooled = cv.get("pooled", {})
        lines += ["", _cv_line(cv, "map", "mAP"),
                  f"Pooled micro F1 {pooled.get('micro_f1', 0):.3f}{_interval(pooled, 'micro_f1')}, at thresholds "
                  "chosen on the other folds' photos."]
    else:
        lines += ["", _cv_line(cv, "map", "mAP")]
    return "\n".join(lines)


def multilabel_threshold(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    thresholds = metrics.get("thresholds") or {}
    if not thresholds:
        return "## Thresholds\n\nNone recorded: every label uses 0.5."
    rows = "\n".join(f"| {name} | {value:.3f} |" for name, value in thresholds.items())
    return ("## Thresholds\n\nEach label's own score threshold, chosen on the validation photos to maximise its F1 "
            "and carried by every export (a label is answered when its score reaches it):\n\n"
            f"| label | threshold |\n|---|---:|\n{rows}")


def multilabel_use(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    count = report.get("data", {}).get("train_images", 0) + report.get("data", {}).get("val_images", 0) or "?"
    return _use("Tagging photos", count, "the labels present among " + (_names(metrics) or "its labels"),
                ["- A label it never saw is never answered; a photo of something else may still get labels.",
                 "- Thresholds chosen on few photos per label are noisy: check rare labels' support above."])


# object detection

def detect_task(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    model = config.get("model", {})
    return (f"## Task\n\nObject detection: boxes with a class and a score for every object of "
            f"{len(metrics.get('class_names') or [])} classes ({_names(metrics)}) in a photo, at most "
            f"{model.get('max_detections', '?')} per photo, decoded and non-max suppressed inside the exported "
            f"model.\n\n{_model_line(config, report)}")


def detect_metrics(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    missing = _not_evaluated(metrics, "map")
    if missing:
        return missing
    lines = ["## Metrics", "", f"Validation COCO mAP (IoU 0.50:0.95) {metrics['map']:.3f}{_interval(metrics, 'map')}, "
             f"AP50 {metrics['ap50']:.3f}{_interval(metrics, 'ap50')}, AP75 {_num(metrics.get('ap75'))} on "
             f"{metrics.get('count')} photos holding {metrics.get('objects')} objects (intervals: bootstrap over "
             "photos).",
             f"At score {metrics.get('min_score')}: precision {_num(metrics.get('precision_at_min_score'))}, recall "
             f"{_num(metrics.get('recall_at_min_score'))}."]
    sizes = {size: ap for size, ap in (metrics.get("ap_by_size") or {}).items() if ap is not None}
    if sizes:
        lines.append("AP by object size (COCO areas): " + ", ".join(f"{k} {v:.3f}" for k, v in sizes.items()) + ".")
    per_class = metrics.get("per_class", {})
    if per_class:
        lines += ["", "| class | AP | AP50 | objects |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {_num(row.get('ap'))} | {_num(row.get('ap50'))} | {row.get('objects')} |"
                  for name, row in per_class.items()]
    return "\n".join(lines + ["", _cv_line(cv, "map", "mAP")])


def detect_threshold(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    return (f"## Threshold\n\nScore {metrics.get('min_score', '?')} (evaluate.min_score): the operating point of the "
            "precision and recall above and what `dlpipe predict` keeps; the exported files return every decoded "
            "box with its score, so an app applies its own (MediaPipe: score_threshold).")


def detect_use(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    from dlpipe.pipelines.detect.model import inference_size

    data, model = report.get("data", {}), config.get("model", {})
    size = inference_size(model["image_size"], model.get("inference_scale", 1.0)) if "image_size" in model else "?"
    return _use("Finding objects in photos", data.get("photos", "?"), "boxes of " + (_names(metrics) or "its classes"),
                ["- Objects of other classes are ignored or, worse, boxed as the closest class.",
                 "- Small objects are found least well (AP by size above); photos much larger than the model's input "
                 f"({size} px) shrink them further."])


# semantic segmentation

def segment_task(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    return (f"## Task\n\nSemantic segmentation: one class per pixel among {len(metrics.get('class_names') or [])} "
            f"({_names(metrics)}).\n\n{_model_line(config, report)}")


def segment_metrics(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    missing = _not_evaluated(metrics, "mean_iou")
    if missing:
        return missing
    lines = ["## Metrics", "", f"Validation mean IoU {metrics['mean_iou']:.3f}{_interval(metrics, 'mean_iou')}, pixel "
             f"accuracy {metrics.get('pixel_accuracy', 0):.3f}{_interval(metrics, 'pixel_accuracy')} on "
             f"{metrics.get('count')} photos at {metrics.get('resolution', 'the model input')}; intervals: "
             f"{metrics.get('interval_method', 'bootstrap over photos')}."]
    per_class = metrics.get("per_class", {})
    if per_class:
        lines += ["", "| class | IoU | 95% interval | pixels | photos |", "|---|---:|---|---:|---:|"]
        for name, row in per_class.items():
            bounds = row.get("iou_interval") or [None, None]
            lines.append(f"| {name} | {_num(row.get('iou'))} | {_num(bounds[0])}-{_num(bounds[1])} | "
                         f"{row.get('pixels')} | {row.get('images')} |")
    return "\n".join(lines + ["", _cv_line(cv, "mean_iou", "mean IoU")])


def segment_threshold(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    return "## Threshold\n\nNone: each pixel gets the class with the highest score."


def segment_use(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    data = report.get("data", {})
    count = data.get("train_images", 0) + data.get("val_images", 0) or "?"
    return _use("Labelling every pixel of photos", count, "a mask of " + (_names(metrics) or "its classes"),
                ["- Masks are predicted at the model's input size and resized to the photo: thin structures blur.",
                 "- Every pixel gets a class: objects of other kinds are labelled as the closest class or background."])


# image generation

def gan_task(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    shape = report.get("data", {}).get("image_shape")
    return (f"## Task\n\nImage generation: a DCGAN generator turns a random seed vector into an image"
            f"{' of ' + 'x'.join(map(str, shape)) + ' pixels' if shape else ''}, like the training images.\n\n"
            f"{_model_line(config, report)}")


def gan_metrics(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    fids = metrics.get("fid_per_epoch") or []
    if not fids:
        return "## Metrics\n\nNo metrics.json: the run was not evaluated."
    return ("## Metrics\n\n"
            f"Fréchet distance of {metrics.get('fid_samples')} generated images to held-out real ones, in the feature "
            f"space of a {metrics.get('feature_model', 'small classifier')}: {fids[-1]:.3f} after the last epoch "
            f"(first {fids[0]:.3f}); two disjoint halves of real images score {metrics.get('fid_floor_real_vs_real', 0):.3f}"
            ", the floor a perfect generator would reach. Lower is better; the figure is comparable only between runs "
            "of the same data and feature model.")


def gan_threshold(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    return ""


def gan_use(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    data = report.get("data", {})
    return ("## Intended use and limits\n\nGenerating images like the training set "
            f"({data.get('train_images', '?')} images: {data.get('split', 'see report.json')}) for demos and teaching. "
            "Limits:\n- It reproduces what it saw, including its biases; it can repeat near-copies of training images.\n"
            "- Generated images are not evidence of anything and must not be passed off as real.")


# 2-D points (the Playground's task)

def points_task(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    model = config.get("model", {})
    layers = model.get("layers") or []
    return (f"## Task\n\nClassification of 2-D points (x, y) into {len(metrics.get('class_names') or [])} classes "
            f"({_names(metrics)}) by the Playground's network: features {', '.join(model.get('features') or [])}, "
            f"hidden layers {', '.join(map(str, layers)) or 'none'}, activation {model.get('activation', '?')}, L1 "
            f"{model.get('l1', 0)}, L2 {model.get('l2', 0)}; the features are computed inside the model, so every "
            f"export takes raw points.\n\n{_model_line(config, report)}")


def points_metrics(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    missing = _not_evaluated(metrics, "test_loss")
    if missing:
        return missing
    return (f"## Metrics\n\nTest loss {metrics['test_loss']:.3f} (cross-entropy) and test accuracy "
            f"{metrics.get('test_accuracy', 0):.3f} on {metrics.get('test_points')} held-out points; training loss "
            f"{metrics.get('train_loss', 0):.3f} on {metrics.get('train_points')} points after {metrics.get('epochs')} "
            "epochs. One split, no interval: rerun with another seed to see the spread.")


def points_threshold(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    return "## Threshold\n\nNone: each point gets the class with the highest score."


def points_use(config: dict[str, Any], metrics: dict[str, Any], report: dict[str, Any], cv: dict) -> str:
    return ("## Intended use and limits\n\nTeaching and experiments: seeing a network learn a decision boundary on "
            "toy data (the Playground's sets or your own CSV). Limits:\n- Points far outside the training range get "
            "whatever the boundary extrapolates to.\n" + HARM)


CARDS = {
    "image": TaskCard(classifier_task, classifier_metrics, classifier_threshold, classifier_use),
    "text": TaskCard(classifier_task, classifier_metrics, classifier_threshold, classifier_use),
    "multilabel": TaskCard(multilabel_task, multilabel_metrics, multilabel_threshold, multilabel_use),
    "detect": TaskCard(detect_task, detect_metrics, detect_threshold, detect_use),
    "segment": TaskCard(segment_task, segment_metrics, segment_threshold, segment_use),
    "gan": TaskCard(gan_task, gan_metrics, gan_threshold, gan_use),
    "points": TaskCard(points_task, points_metrics, points_threshold, points_use),
}

# the parity figure beside top-1 agreement that says most about each task's exports (artifacts.json)
FIDELITY = {"multilabel": ("decision_agreement", "label-decision agreement"), "detect": ("mean_box_iou", "mean box IoU"),
            "segment": ("mask_iou", "mask IoU"), "gan": ("max_pixel_diff", "max pixel difference")}


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
