"""Benchmark: `dlpipe doctor FILE` on the shared Yelp sentences with planted flipped labels and duplicates.

    python bench/doctor_text_planted.py [--file yelp_labelled.txt] [--flip 20] [--copies 10] [--seed 0]

Copies /work/shared/data/sentiment_sentences/FILE to a temporary folder, flips `--flip` labels, appends `--copies`
sentences again with their label and `--copies` again with the other label; prints precision and recall of the
planted conflicts (both rows of each) and how many duplicates were flagged. (The version of commit 8473f0e also
scored the flipped labels among a TF-IDF probe's label errors: 11-13% precision, so the doctor no longer lists them.)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

SOURCE = Path("/work/shared/data/sentiment_sentences")


def main() -> None:
    import numpy as np

    from dlpipe.pipelines.doctor_text import diagnose_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", default="yelp_labelled.txt")
    parser.add_argument("--flip", type=int, default=20)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = [line for line in (SOURCE / args.file).read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(lines))
    flip = order[:args.flip]
    for i in flip:
        text, label = lines[i].rsplit("\t", 1)
        lines[i] = f"{text}\t{1 - int(label)}"
    copied = order[args.flip:args.flip + 2 * args.copies]
    conflicts = []
    for k, i in enumerate(copied):
        text, label = lines[i].rsplit("\t", 1)
        lines.append(f"{text}\t{label if k < args.copies else 1 - int(label)}")
        if k >= args.copies:
            conflicts += [int(i), len(lines) - 1]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / args.file
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        diagnosis = diagnose_text(str(path))
    rows = lambda problem: {int(f.path.rsplit("#row", 1)[1]) - 1 for f in diagnosis.of(problem)}  # noqa: E731
    print(f"{len(lines)} sentences")
    for name, found, planted in (("conflicting labels", rows("conflicting_labels"), set(conflicts)),):
        hits = len(found & planted)
        print(f"{name:20s} planted {len(planted):3d} flagged {len(found):3d} found {hits:3d} "
              f"recall {hits / max(1, len(planted)):.2f} precision {hits / max(1, len(found)):.2f}")
    print("exact duplicates flagged:", len(diagnosis.of("exact_duplicate")), "near:", len(diagnosis.of("near_duplicate")))


if __name__ == "__main__":
    main()
