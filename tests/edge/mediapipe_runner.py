"""Run MediaPipe Tasks classifiers on files and texts: JSON job on stdin, JSON results on stdout.

Runs under the separate .venv-mediapipe interpreter (mediapipe's cv2, numpy and
protobuf pins clash with dlpipe's environment), so it imports nothing of dlpipe.

Job: {"image": [{"model": PATH, "images": [PATH, ...]}], "text": [{"model": PATH, "texts": [STR, ...]}]}; an image
job may say "decode": "pillow" (Pillow's pixels handed to MediaPipe) instead of MediaPipe decoding the file.
Result: {"image": [[[category, ...] per image] per job], "text": [...], "seconds": {"image": [...], "text": [...]}},
a category being {"index", "score", "category_name"}; a model that fails to load gives {"error": message}
instead of its list. "seconds" holds each job's median time of one classify() call (the file already decoded
for images: mp.Image.create_from_file runs outside the timing), or None for a job that failed.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

_TIMES: dict[str, list] = {"image": [], "text": []}


def _timed(kind: str, classify, items) -> list:
    results, times = [], []
    for item in items:
        started = time.perf_counter()
        results.append(classify(item))
        times.append(time.perf_counter() - started)
    _TIMES[kind].append(statistics.median(times) if times else None)
    return results


def _categories(result) -> list[dict]:
    head = result.classifications[0]
    return [{"index": c.index, "score": float(c.score), "category_name": c.category_name} for c in head.categories]


def _classify_images(job: dict) -> list | dict:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=job["model"]),
                                            max_results=job.get("max_results", -1))
    try:
        classifier = vision.ImageClassifier.create_from_options(options)
    except Exception as error:  # the load error is the finding: report it, do not crash the whole job
        _TIMES["image"].append(None)
        return {"error": f"{type(error).__name__}: {error}"}
    with classifier:
        images = [_image(mp, path, job.get("decode", "mediapipe")) for path in job["images"]]
        return [_categories(result) for result in _timed("image", classifier.classify, images)]


def _image(mp, path: str, decode: str):
    """The photo as MediaPipe decodes a file, or (decode "pillow") the pixels Pillow decodes, turned upright as
    dlpipe turns them: MediaPipe's own JPEG decoder lands up to 3 levels from libjpeg's on 10% of a photo's pixels."""
    if decode != "pillow":
        return mp.Image.create_from_file(path)
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as photo:
        pixels = np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(photo).convert("RGB")))
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=pixels)


def _classify_texts(job: dict) -> list | dict:
    from mediapipe.tasks.python import BaseOptions, text

    options = text.TextClassifierOptions(base_options=BaseOptions(model_asset_path=job["model"]),
                                         max_results=job.get("max_results", -1))
    try:
        classifier = text.TextClassifier.create_from_options(options)
    except Exception as error:
        _TIMES["text"].append(None)
        return {"error": f"{type(error).__name__}: {error}"}
    with classifier:
        return [_categories(result) for result in _timed("text", classifier.classify, job["texts"])]


def main() -> None:
    request = json.load(sys.stdin)
    answer = {"image": [_classify_images(job) for job in request.get("image", [])],
              "text": [_classify_texts(job) for job in request.get("text", [])]}
    answer["seconds"] = _TIMES
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
