"""Classify files (or sentences) with MediaPipe Tasks: `python mediapipe_worker.py JOB.json ANSWER.json`.

Run by `dlpipe check-device` under the separate MediaPipe environment (mediapipe's own OpenCV, NumPy and
protobuf clash with dlpipe's), so this script imports nothing of dlpipe and is never imported by it.

Job: {"kind": "image" | "text", "models": [PATH, ...], "inputs": [photo path or sentence, ...]}
Answer: {"mediapipe_version": STR, "models": [{"answers": [{"index", "label", "score"} | {"error": STR}, ...]}
| {"error": STR} (the file was refused), ...]}: one answer per input, in order, the top category of each.
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


def _classifier(kind: str, model: str):
    from mediapipe.tasks.python import BaseOptions, text, vision

    base = BaseOptions(model_asset_path=model)
    if kind == "image":
        return vision.ImageClassifier.create_from_options(vision.ImageClassifierOptions(base_options=base))
    return text.TextClassifier.create_from_options(text.TextClassifierOptions(base_options=base))


def _answer(kind: str, classifier, item: str) -> dict:
    import mediapipe as mp

    try:  # one unreadable photo is that photo's answer, not the end of the job
        value = mp.Image.create_from_file(item) if kind == "image" else item
        return _top(classifier.classify(value))
    except Exception as error:  # noqa: BLE001 - reported per input
        message = " ".join(str(error).split())
        if "sizes do not match" in message and kind == "image":  # e.g. a 1-channel PNG, which MediaPipe hands on as is
            message = f"the decoded image does not fit the model's input ({message[message.find('TfLiteTensor dims'):][:160]})"
        return {"error": f"{type(error).__name__}: {message[:300]}"}


def _close(classifier) -> None:
    try:
        classifier.close()
    except Exception:  # noqa: BLE001 - a graph a failed input broke also fails to close; nothing left to do
        pass


def _run_model(kind: str, model: str, inputs: list) -> dict:
    try:
        classifier = _classifier(kind, model)
    except Exception as error:  # noqa: BLE001 - MediaPipe refusing the file is the finding, reported
        return {"error": f"{type(error).__name__}: {str(error).strip()[:500]}"}
    answers = []
    for item in inputs:
        answers.append(_answer(kind, classifier, item))
        if "error" in answers[-1]:  # the failed call may leave MediaPipe's graph broken: a fresh one for the rest
            _close(classifier)
            classifier = _classifier(kind, model)
    _close(classifier)
    return {"answers": answers}


def main(job_path: str, answer_path: str) -> None:
    import mediapipe as mp

    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    answer = {"mediapipe_version": getattr(mp, "__version__", "unknown"),
              "models": [_run_model(job["kind"], model, job["inputs"]) for model in job["models"]]}
    partial = answer_path + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(answer, handle)
    os.replace(partial, answer_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
