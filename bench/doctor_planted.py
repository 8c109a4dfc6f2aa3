"""Benchmark: does `dlpipe doctor` find problems planted in the ant/bee photos (issue 30, item 2)?

One command, from the repository root with the venv active:

    python bench/doctor_planted.py [--relabel 10] [--copies 5] [--seed 0]

Copies /work/shared/data/hymenoptera/train to a temporary folder (the shared data is never written), then plants:
`--relabel` photos moved to the other class (half each way), `--copies` photos of each class copied byte for byte
within it, `--copies` photos of each class copied into the other class, and `--near` photos of each class saved
into the other class as near copies (80% of the size, JPEG quality 75). Runs the doctor with its defaults (EfficientNet-Lite2
features, 5 folds, the probe's C chosen by out-of-fold log-loss) and prints precision and recall of:
  label errors      planted: the moved photos and the cross-class copies, exact and near (each is a photo in the
                    wrong folder);
  cross-class dups  planted: both copies of each photo copied (or near-copied) across classes;
  exact dups        planted: each copy within a class with its original; either one flagged finds the pair (the
                    doctor keeps the first in path order and flags the other).
Flags outside the planted sets are listed, so a real mistake of the original folder can be told from noise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SOURCE = Path("/work/shared/data/hymenoptera/train")


def plant(root: Path, relabel: int, copies: int, near: int, seed: int) -> dict[str, set]:
    """Plant the problems in `root` (a copy of SOURCE); returns the canonical paths of each planted set."""
    import numpy as np

    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = {c: sorted((root / c).iterdir()) for c in classes}
    picks = {c: [files[c][i] for i in rng.permutation(len(files[c]))] for c in classes}
    planted: dict[str, set[str]] = {"label_error": set(), "cross_class_duplicate": set(), "exact_duplicate": set(), "exact_pairs": set()}
    for n, source in enumerate(classes):
        other = classes[1 - n]
        chosen = picks[source]
        for photo in chosen[:relabel // 2]:
            target = root / other / f"moved_{photo.name}"
            shutil.move(photo, target)
            planted["label_error"].add(os.path.realpath(target))
        for photo in chosen[relabel // 2: relabel // 2 + copies]:
            target = root / source / f"copy_{photo.name}"
            shutil.copy(photo, target)
            planted["exact_duplicate"].add(os.path.realpath(target))
            planted["exact_pairs"].add((os.path.realpath(target), os.path.realpath(photo)))
        for photo in chosen[relabel // 2 + copies: relabel // 2 + 2 * copies]:
            target = root / other / f"crossed_{photo.name}"
            shutil.copy(photo, target)
            planted["cross_class_duplicate"] |= {os.path.realpath(target), os.path.realpath(photo)}
            planted["label_error"].add(os.path.realpath(target))
        for photo in chosen[relabel // 2 + 2 * copies: relabel // 2 + 2 * copies + near]:
            target = root / other / f"near_{photo.stem}.jpg"
            near_copy(photo, target)
            planted["cross_class_duplicate"] |= {os.path.realpath(target), os.path.realpath(photo)}
            planted["label_error"].add(os.path.realpath(target))
    return planted


def near_copy(photo: Path, target: Path) -> None:
    """The photo at 80% of its size, re-encoded as JPEG at quality 75: other bytes, the same picture."""
    from PIL import Image

    with Image.open(photo) as image:
        small = image.convert("RGB").resize((max(1, image.width * 4 // 5), max(1, image.height * 4 // 5)))
    small.save(target, "JPEG", quality=75)


def score(name: str, found: set[str], planted: set[str]) -> None:
    hits = found & planted
    precision = len(hits) / len(found) if found else float("nan")
    recall = len(hits) / len(planted) if planted else float("nan")
    print(f"{name:22s} planted {len(planted):3d}  flagged {len(found):3d}  found {len(hits):3d}  "
          f"recall {recall:.2f}  precision {precision:.2f}")
    for path in sorted(found - planted):
        print(f"    not planted: {Path(path).parent.name}/{Path(path).name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relabel", type=int, default=10)
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--near", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from dlpipe.pipelines.doctor import diagnose
    from dlpipe.pipelines.doctor_page import write_doctor_files

    with tempfile.TemporaryDirectory(prefix="doctor-bench-") as tmp:
        root = Path(tmp) / "train"
        shutil.copytree(SOURCE, root)
        planted = plant(root, args.relabel, args.copies, args.near, args.seed)
        started = time.perf_counter()
        diagnosis = diagnose(str(root), Path(tmp) / "out", echo=lambda _: None)
        seconds = time.perf_counter() - started
        write_doctor_files(diagnosis, Path(tmp) / "out")
        print(f"{sum(diagnosis.class_counts.values())} photos {diagnosis.class_counts}, doctor {seconds:.0f} s "
              f"(backbone {diagnosis.backbone}, {diagnosis.folds} folds, features computed afresh; probe C={diagnosis.probe_c}, "
              f"out-of-fold accuracy {diagnosis.probe_accuracy:.3f} on the planted labels)")
        for problem in ("label_error", "cross_class_duplicate"):
            score(problem, {f.path for f in diagnosis.of(problem)}, planted[problem])
        flagged = {f.path for f in diagnosis.of("exact_duplicate")}
        pairs = planted["exact_pairs"]
        in_pairs = {path for pair in pairs for path in pair}
        found = sum(1 for pair in pairs if flagged & set(pair))
        print(f"{'exact_duplicate':22s} planted {len(pairs):3d} pairs, flagged {len(flagged):3d}, pairs found {found:3d}  "
              f"recall {found / max(1, len(pairs)):.2f}  precision {len(flagged & in_pairs) / max(1, len(flagged)):.2f}")
        print("other findings: " + ", ".join(f"{p}: {len(diagnosis.of(p))}" for p in
                                               ("near_duplicate", "unreadable", "class_imbalance")))


if __name__ == "__main__":
    main()
