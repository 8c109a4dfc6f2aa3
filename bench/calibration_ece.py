"""Benchmark (issue 29, item 2): expected calibration error before and after temperature scaling, out of fold.

Runs a recipe with `train.cv_folds=K` (default: the image-classify default on the 245 shared photos), or reads a
finished cross-validated run (`--run OUT`), and reports from its folds' held-out predictions
(OUT/folds/K/validation_outputs.npz):

- the temperature the run built into its model (fitted on all out-of-fold predictions) and the ECE before and
  after on those same predictions (what metrics.json records: T was fitted on them, so slightly optimistic);
- cross-fitted: for each fold, T fitted on the other folds' predictions and applied to this fold's, pooled: an
  ECE after on predictions T never saw.

    python bench/calibration_ece.py --data /work/shared/data/hymenoptera/train --out /tmp/cal_run [--folds 5]
    python bench/calibration_ece.py --run /tmp/cal_run

`--features-from RUN` copies another run's cached backbone features (OUT/features/) first, so the folds do not
compute them again. Prints a markdown table and writes the figures as JSON (`--json`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np


def fold_outputs(run: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    from dlpipe.pipelines.calibration import OUTPUTS_FILE

    folds = sorted((p for p in (run / "folds").glob("*") if (p / OUTPUTS_FILE).is_file()), key=lambda p: int(p.name))
    if not folds:
        raise SystemExit(f"{run}: no folds/K/{OUTPUTS_FILE}; run with train.cv_folds")
    out = []
    for fold in folds:
        with np.load(fold / OUTPUTS_FILE) as saved:
            out.append((saved["logits"], saved["labels"]))
    return out


def figures(run: Path) -> dict:
    from dlpipe.models.calibration import expected_calibration_error, fit_temperature, negative_log_likelihood, tempered

    parts = fold_outputs(run)
    logits = np.concatenate([p[0] for p in parts], axis=-2)
    labels = np.concatenate([p[1] for p in parts])
    temperature = fit_temperature(logits, labels)
    crossed = []
    for k, (held_logits, held_labels) in enumerate(parts):
        others = [p for i, p in enumerate(parts) if i != k]
        t_k = fit_temperature(np.concatenate([p[0] for p in others], axis=-2), np.concatenate([p[1] for p in others]))
        crossed.append(tempered(held_logits, t_k))
    crossed_p = np.concatenate(crossed)
    before, after = tempered(logits, 1.0), tempered(logits, temperature)
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    return {"run": str(run), "folds": len(parts), "count": int(len(labels)),
            "accuracy": float(np.mean(before.argmax(1) == labels)), "temperature": temperature,
            "ece_before": expected_calibration_error(before, labels), "ece_after": expected_calibration_error(after, labels),
            "ece_after_cross_fitted": expected_calibration_error(crossed_p, labels),
            "nll_before": negative_log_likelihood(before, labels), "nll_after": negative_log_likelihood(after, labels),
            "nll_after_cross_fitted": negative_log_likelihood(crossed_p, labels),
            "run_calibration": {k: v for k, v in (metrics.get("calibration") or {}).items()
                                if not k.startswith("reliability")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run with train.cv_folds (skips training)")
    parser.add_argument("--data", default="/work/shared/data/hymenoptera/train")
    parser.add_argument("--pipeline", default="image-classify")
    parser.add_argument("--out", type=Path, default=Path("/tmp/dlpipe-calibration-ece"), help="a new folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="extra KEY=VALUE for the run")
    parser.add_argument("--features-from", type=Path, help="copy this run's features/ cache first")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run = args.run
    if run is None:
        from dlpipe.pipelines import api

        if args.features_from and (args.features_from / "features").is_dir():
            shutil.copytree(args.features_from / "features", args.out / "features", dirs_exist_ok=True)
        api.run(args.pipeline, data=args.data, out=args.out,
                sets=[f"train.cv_folds={args.folds}", "export.formats=[keras]", *args.sets])
        run = args.out
    result = figures(run)
    print(f"| {result['count']} out-of-fold predictions ({result['folds']} folds), accuracy {result['accuracy']:.3f} "
          f"| T {result['temperature']:.3f} |\n|---|---:|")
    for key in ("ece_before", "ece_after", "ece_after_cross_fitted", "nll_before", "nll_after", "nll_after_cross_fitted"):
        print(f"| {key} | {result[key]:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
