"""Classify files (or sentences), or find objects in photos, with MediaPipe Tasks:
`python mediapipe_worker.py JOB.json ANSWER.json`.

Run by `dlpipe check-device` under the separate MediaPipe environment (mediapipe's own OpenCV, NumPy and
protobuf clash with dlpipe's), so this script imports nothing of dlpipe and is never imported by it.

Job: {"kind": "image" | "text" | "detect", "models": [PATH, ...], "inputs": [photo path or sentence, ...],
"score_threshold": FLOAT (detect only; default 0)}
Answer: {"mediapipe_version": STR, "models": [{"answers": [{"index", "label", "score"} | {"error": STR}, ...]}
| {"error": STR} (the file was refused), ...]}: one answer per input, in order, the top category of each; for
"detect" each answer is {"boxes": [{"label", "score", "box": [x1, y1, x2, y2] in the photo's whole pixels}, ...]},
one per category (MediaPipe merges the classes found at one box into one detection's categories).
"""

from __future__ import annotations

import json
import os
import sys


def _top(result) -> dict:
    categories = result.classifications[0].categories
    if not categories:
        return {"error": "MediaPipe returned no category"}
    best = max(categories, key=lambda category: category.score)
    return {"index": int(best.index), "label": best.category_name, "score": float(best.score)}


def _boxes(result) -> dict:
    boxes = []
    for found in result.detections:
        box = found.bounding_box
        corners = [box.origin_x, box.origin_y, box.origin_x + box.width, box.origin_y + box.height]
        boxes += [{"label": category.category_name, "score": float(category.score), "box": corners}
                  for category in found.categories]
    return {"boxes": boxes}


def _classifier(kind: str, model: str, score_threshold: float = 0.0):
    from mediapipe.tasks.python import BaseOptions, text, vision

    base = BaseOptions(model_asset_path=model)
    if kind == "detect":
        return vision.ObjectDetector.create_from_options(vision.ObjectDetectorOptions(
            base_options=base, score_threshold=score_threshold, max_results=-1))
    if kind == "image":
        return vision.ImageClassifier.create_from_options(vision.ImageClassifierOptions(base_options=base))
    return text.TextClassifier.create_from_options(text.TextClassifierOptions(base_options=base))


def _answer(kind: str, classifier, item: str) -> dict:
    import mediapipe as mp

    try:  # one unreadable photo is that photo's answer, not the end of the job
        value = mp.Image.create_from_file(item) if kind != "text" else item
        return _boxes(classifier.detect(value)) if kind == "detect" else _top(classifier.classify(value))
    except Exception as error:  # noqa: BLE001 - reported per input
        message = " ".join(str(error).split())
        if "sizes do not match" in message and kind != "text":  # e.g. a 1-channel PNG, which MediaPipe hands on as is
            message = f"the decoded image does not fit the model's input ({message[message.find('TfLiteTensor dims'):][:160]})"
        return {"error": f"{type(error).__name__}: {message[:300]}"}


def _close(classifier) -> None:
    try:
        classifier.close()
    except Exception:  # noqa: BLE001 - a graph a failed input broke also fails to close; nothing left to do
        pass


def _run_model(kind: str, model: str, inputs: list, score_threshold: float = 0.0) -> dict:
    try:
        classifier = _classifier(kind, model, score_threshold)
    except Exception as error:  # noqa: BLE001 - MediaPipe refusing the file is the finding, reported
        return {"error": f"{type(error).__name__}: {str(error).strip()[:500]}"}
    answers = []
    for item in inputs:
        answers.append(_answer(kind, classifier, item))
        if "error" in answers[-1]:  # the failed call may leave MediaPipe's graph broken: a fresh one for the rest
            _close(classifier)
            classifier = _classifier(kind, model, score_threshold)
    _close(classifier)
    return {"answers": answers}


def main(job_path: str, answer_path: str) -> None:
    import mediapipe as mp

    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    answer = {"mediapipe_version": getattr(mp, "__version__", "unknown"),
              "models": [_run_model(job["kind"], model, job["inputs"], job.get("score_threshold", 0.0))
                         for model in job["models"]]}
    partial = answer_path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(answer, handle)
    os.replace(partial, answer_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
