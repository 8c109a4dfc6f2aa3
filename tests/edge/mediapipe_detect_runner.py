"""Run MediaPipe Tasks' ObjectDetector on photos: JSON job on stdin, JSON results on stdout.

Runs under the separate .venv-mediapipe interpreter (see mediapipe_env.py), importing nothing of dlpipe.
Job: {"model": PATH, "images": [PATH, ...], "score_threshold": 0.3}
Result: {"detections": [[{"label", "score", "box": [x1, y1, x2, y2] in pixels}, ...] per image] (one per category),
"seconds": median time of one detect() call} or {"error": message} when the model does not load.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def main() -> None:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    job = json.load(sys.stdin)
    options = vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=job["model"]),
                                           score_threshold=job.get("score_threshold", 0.3), max_results=-1)
    try:
        detector = vision.ObjectDetector.create_from_options(options)
    except Exception as error:  # the load error is the finding: report it
        json.dump({"error": f"{type(error).__name__}: {error}"}, sys.stdout)
        return
    found, times = [], []
    with detector:
        for path in job["images"]:
            image = mp.Image.create_from_file(path)
            started = time.perf_counter()
            result = detector.detect(image)
            times.append(time.perf_counter() - started)
            # every category: MediaPipe merges the classes found at the same box into one detection
            found.append([{"label": c.category_name, "score": float(c.score),
                           "box": [d.bounding_box.origin_x, d.bounding_box.origin_y,
                                   d.bounding_box.origin_x + d.bounding_box.width,
                                   d.bounding_box.origin_y + d.bounding_box.height]}
                          for d in result.detections for c in d.categories])
    json.dump({"detections": found, "seconds": statistics.median(times) if times else None}, sys.stdout)


if __name__ == "__main__":
    main()
