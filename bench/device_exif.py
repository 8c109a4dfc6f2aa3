"""Benchmark (issue 32): phone photos stored sideways with an EXIF Orientation tag, in MediaPipe against dlpipe.

One command, from the repository root with the venv active, after bench/device_default_cv.py (it reuses its folds):

    nice -n 10 python bench/device_exif.py

A phone saves what the sensor saw and records in the JPEG's EXIF Orientation tag how to turn it upright. For every
held-out photo of bench/device_default_cv.py's folds this writes a copy stored a quarter turn anticlockwise with
Orientation 6 ("turn 90 degrees clockwise to view"), so a viewer that reads the tag shows the original photo, then
runs `dlpipe check-device FOLD_RUN --data ROTATED --web` with each fold's model of the default option. dlpipe turns
JPEGs upright by the tag (README, "EXIF orientation"); the question is what MediaPipe Python and MediaPipe Web do.
Results: bench/results/device_exif.json and a markdown table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FOLDS_ROOT = ROOT / "bench" / "results" / "device_cv"
RUNS = FOLDS_ROOT / "stretch__MediaPipe_sampling__the_default_since_"
DLPIPE = str(Path(sys.executable).with_name("dlpipe"))
FOLDS = 5


def rotated_copies(val: Path, target: Path) -> int:
    """Each photo of `val`, its pixels turned 90 degrees anticlockwise, saved as JPEG with EXIF Orientation 6."""
    count = 0
    for photo in sorted(p for p in val.rglob("*") if p.is_file()):
        out = target / photo.parent.name / (photo.stem + ".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.is_file():
            with Image.open(photo) as image:
                upright = image.convert("RGB")
            exif = Image.Exif()
            exif[0x0112] = 6
            upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=95, exif=exif.tobytes())
        count += 1
    return count


def main() -> None:
    rows = {}
    for fold in range(FOLDS):
        rotated = FOLDS_ROOT / f"exif_{fold}"
        rotated_copies(FOLDS_ROOT / f"split_{fold}" / "val", rotated)
        report = FOLDS_ROOT / f"exif_{fold}.json"
        if not report.is_file():
            subprocess.run([DLPIPE, "check-device", str(RUNS / f"fold{fold}"), "--data", str(rotated), "--out",
                            str(report), "--web"], check=True)
        rows[fold] = json.loads(report.read_text())
    pooled: dict[str, dict[str, float]] = {}
    for runtime in ("files", "web"):
        for name in rows[0][runtime]:
            figures = [rows[k][runtime][name] for k in rows]
            count = sum(f["inputs"] for f in figures)
            pooled.setdefault(name, {})[runtime] = {
                "agreement": sum(f["top1_agreement"] * f["inputs"] for f in figures) / count,
                "accuracy": sum(f["mediapipe_accuracy"] * f["inputs"] for f in figures) / count,
                "keras_accuracy": sum(f["keras_accuracy"] * f["inputs"] for f in figures) / count, "count": count}
    result = {"date": date.today().isoformat(), "command": "python bench/device_exif.py", "files": pooled}
    (ROOT / "bench" / "results" / "device_exif.json").write_text(json.dumps(result, indent=2))
    print("| file | photos | Keras (dlpipe) accuracy | MediaPipe Python agreement / accuracy | MediaPipe Web agreement / "
          "accuracy |\n|---|---:|---:|---|---|")
    for name, by in pooled.items():
        py, web = by["files"], by["web"]
        print(f"| {name} | {py['count']} | {py['keras_accuracy']:.3f} | {100 * py['agreement']:.1f}% / "
              f"{py['accuracy']:.3f} | {100 * web['agreement']:.1f}% / {web['accuracy']:.3f} |")


if __name__ == "__main__":
    main()
