"""Benchmark: `dlpipe export RUN --quantize auto` on the default image and sentiment runs (issue 29 item 1).

One command, from the repository root with the venv active:

    python bench/quantize_auto.py [--only image|text|none] [--detector RUN] [--out bench/results/quantize_auto]

Image: the default image-classify recipe trained on a fixed half of the shared hymenoptera photos (in each class,
the files in name order at even positions), the other half (odd positions, never seen in training, validation or
the refit) held out as --eval-data. Text: the default sentiment recipe trained on amazon_cells_labelled.txt, the
1,000 yelp_labelled.txt sentences held out. Each is exported once with `--quantize auto --max-drop 1`, keeping every
candidate (--detector RUN: also a trained detector on its own validation photos); the choice at budgets 0.5 / 1 / 2 points (and with --prefer speed) is the same `choose` on the measured
table. Prints a markdown table per run and writes OUT/quantize_auto.json. A run already trained in OUT is reused.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BUDGETS = (0.5, 1.0, 2.0)


def half_split(source: Path, target: Path) -> tuple[Path, Path]:
    """Symlink folders train/ (even positions in name order, per class) and held_out/ (odd positions)."""
    for index_parity, name in ((0, "train"), (1, "held_out")):
        for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
            files = sorted(p for p in class_dir.iterdir() if p.is_file())
            folder = target / name / class_dir.name
            folder.mkdir(parents=True, exist_ok=True)
            for position, path in enumerate(files):
                link = folder / path.name
                if position % 2 == index_parity and not link.exists():
                    link.symlink_to(path)
    return target / "train", target / "held_out"


def train_once(pipeline: str, data: Path, out: Path) -> float:
    """Train with the default recipe unless OUT already holds a finished run; the wall seconds it took (0: reused)."""
    from dlpipe.pipelines import api

    if (out / "model.keras").is_file():
        return 0.0
    started = time.perf_counter()
    sets = ["train.progress=none", "train.tensorboard=false"]
    if pipeline == "image-classify" and _has_key("evaluate", "unknown"):
        sets.append("evaluate.unknown=false")  # the plain classifier: the unknown gate is measured in its own issue
    api.run(pipeline, data=str(data), out=out, sets=sets,
            echo=lambda line: print("   ", line, file=sys.stderr))
    return time.perf_counter() - started


def detector_validation(run: Path, target: Path) -> Path:
    """A COCO folder of the detector run's own validation photos (its fold, never trained on: detectors do not
    refit), for --eval-data: the run's validation split carries no box labels through the load stage's examples."""
    from dlpipe.pipelines.exporting import _run_data

    _, val, _ = _run_data(run)
    source = Path(val.inputs[0]).parent.parent  # DATA/images/x.jpg -> DATA, where annotations.json is
    coco = json.loads((source / "annotations.json").read_text())
    names = {Path(path).name for path in val.inputs}
    images = [image for image in coco["images"] if image["file_name"] in names]
    ids = {image["id"] for image in images}
    (target / "images").mkdir(parents=True, exist_ok=True)
    for image in images:
        link = target / "images" / image["file_name"]
        if not link.exists():
            link.symlink_to(source / "images" / image["file_name"])
    subset = {**coco, "images": images, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    (target / "annotations.json").write_text(json.dumps(subset))
    return target


def _has_key(section: str, key: str) -> bool:
    import dataclasses

    from dlpipe.pipelines.catalog import get_pipeline

    config_class = get_pipeline("image-classify").stage_class(section).config_cls
    return any(field.name == key for field in dataclasses.fields(config_class))


def measure(name: str, run: Path, eval_data: Path, keep: Path) -> dict:
    from dlpipe.pipelines.quantize_auto import Candidate, choose, export_auto

    started = time.perf_counter()
    record = export_auto(run, None, 1.0, str(eval_data), "size", echo=lambda line: print(line, file=sys.stderr),
                         keep_candidates=keep)
    seconds = time.perf_counter() - started
    choices = {}
    for prefer in ("size", "speed"):
        for budget in BUDGETS:
            candidates = [Candidate(**row) for row in copy.deepcopy(record["candidates"])]
            choices[f"{prefer} {budget:g}"] = choose(candidates, budget, prefer).name
    return {"run": name, "seconds": seconds, "record": record, "choices": choices}


def markdown(result: dict) -> str:
    record = result["record"]
    lines = [(f"{result['run']}: scored on {record['eval_count']} held-out inputs ({record['metric']}), "
              f"export --quantize auto took {result['seconds']:.0f} s"),
             "", (f"| candidate | size MB | ms per input | {record['metric']} % | drop (points) | at budget 1 |"),
             "|---|---:|---:|---:|---:|---|"]
    for row in record["candidates"]:
        cells = [f"{row['size_bytes'] / 1e6:.2f}" if row["size_bytes"] else "-",
                 f"{row['ms_per_input']:.2f}" if row["ms_per_input"] else "-",
                 f"{row['score']:.2f}" if row["score"] is not None else "-",
                 f"{row['drop']:.2f}" if row["drop"] is not None else "-"]
        note = f" ({row['note']})" if row["note"] else ""
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {row['verdict']}{note} |")
    lines += ["", "auto chose: " + ", ".join(f"{key} -> {value}" for key, value in result["choices"].items())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["image", "text", "none"], help="none: only --detector")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "quantize_auto"))
    parser.add_argument("--detector", metavar="RUN", help="also a trained `dlpipe run detect` folder (not refitted), "
                                                          "scored on its own validation photos")
    args = parser.parse_args()
    out = Path(args.out)
    results = []
    if args.only in (None, "image"):
        train, held_out = half_split(SHARED / "hymenoptera" / "train", out / "hymenoptera_half")
        run = out / "image_run"
        trained = train_once("image-classify", train, run)
        results.append({**measure("default image-classify (hymenoptera, trained on half)", run, held_out,
                                  out / "image_candidates"), "train_seconds": trained})
    if args.only in (None, "text"):
        run = out / "text_run"
        trained = train_once("sentiment", SHARED / "sentiment_sentences" / "amazon_cells_labelled.txt", run)
        results.append({**measure("default sentiment (trained on amazon, scored on yelp)", run,
                                  SHARED / "sentiment_sentences" / "yelp_labelled.txt", out / "text_candidates"),
                        "train_seconds": trained})
    if args.detector:
        run = out / "detector_run"
        if not run.exists():  # a copy: the chosen file is written into the run folder
            run.mkdir(parents=True)
            for name in ("model.keras", "labels.txt", "preprocessing.json", "config.yaml", "metrics.json", "report.json"):
                (run / name).write_bytes((Path(args.detector) / name).read_bytes())
        results.append({**measure(f"detector {Path(args.detector).name} (its validation fold)", run,
                                  detector_validation(run, out / "detector_validation"), out / "detector_candidates"),
                        "train_seconds": 0.0})
    from dlpipe import atomic

    atomic.write_json(out / "quantize_auto.json", results)
    for result in results:
        print(markdown(result) + "\n")


if __name__ == "__main__":
    main()
