"""Benchmark (issue 14): 5-fold cross-validated accuracy of image recipes on the 245 shared ant/bee photos.

One command, from the repository root with the venv active:

    nice -n 10 python bench/image_recipes.py [--data ../shared/data/hymenoptera/train] [--only NAME ...] [--folds 5]

For each recipe it runs `dlpipe run image-classify --set train.cv_folds=5` (each fold in
bench/results/recipes/NAME/folds/K/, resumable: rerunning skips finished folds and recipes) and then
the recipe's final run on the whole folder. It records the pooled cross-validated accuracy with its
95% Wilson interval, mean ± sd over folds, the linear probe measured beside every fold, the final run's
own reported validation accuracy (the gap to CV is what a user would be misled by), and CPU-minutes
(process CPU time of the final run's train stage, run on its own after the CV so that no features
cached by the folds are reused: it includes the backbone's forward passes). Results:
bench/results/image_recipes.json and a markdown table on stdout, for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
RESULTS = ROOT / "bench" / "results" / "recipes"

# The default recipe before issue 14, spelt out, so this row does not move when the defaults do.
BEFORE = ["train.epochs=5", "train.finetune_epochs=3", "train.unfreeze_blocks=3", "train.learning_rate=0.001",
          "train.finetune_lr_factor=0.1", "train.label_smoothing=0", "train.refit=false", "evaluate.tta=none",
          "model.mode=finetune"]
LITE2_PROBE = ["model.backbone=efficientnet_lite2", "model.mode=probe", "train.refit=true", "evaluate.tta=none"]
LITE2_LPFT = ["model.backbone=efficientnet_lite2", "model.mode=finetune", "train.head=probe", "train.finetune_epochs=3",
              "train.unfreeze_blocks=2", "train.learning_rate=0.001", "train.finetune_lr_factor=0.1",
              "train.label_smoothing=0.1", "train.refit=true", "evaluate.tta=none"]
RECIPES: dict[str, list[str]] = {
    "linear probe (efficientnet_lite0)": ["model.backbone=efficientnet_lite0", "model.mode=probe", "train.refit=true",
                                          "evaluate.tta=none"],
    "default before issue 14 (efficientnet_lite0)": ["model.backbone=efficientnet_lite0", *BEFORE],
    "linear probe (efficientnet_lite2)": LITE2_PROBE,
    "LP-FT (efficientnet_lite2)": LITE2_LPFT,
    "new default (pipelines/image_classify/)": [],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--only", nargs="*", help="substrings of the recipe names to run")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cv-only", nargs="*", default=[], metavar="NAME",
                        help="substrings of recipes to cross-validate without their final run (saves CPU when the "
                             "final run's own figure is known from elsewhere)")
    args = parser.parse_args()
    from dlpipe.pipelines import api

    results_file = ROOT / "bench" / "results" / "image_recipes.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for name, sets in RECIPES.items():
        if args.only and not any(part in name for part in args.only):
            continue
        out = RESULTS / "".join(c if c.isalnum() else "_" for c in name)
        resume = (out / "config.yaml").is_file()
        started, cpu = time.perf_counter(), cpu_seconds()
        echo = lambda line: print(f"[{name}] {line}", flush=True)  # noqa: E731
        all_sets = [*sets, f"train.cv_folds={args.folds}", "export.formats=[]", "train.progress=epochs",
                    "train.tensorboard=false"]
        from dlpipe.pipelines.training import crossval
        from dlpipe.pipelines.catalog import get_pipeline

        config = api.load_saved_config(out) if resume else api.resolve_config("image-classify", None, all_sets, args.data)
        cv = crossval.run_cross_validation(get_pipeline("image-classify"), config, out, resume=resume, echo=echo)
        metrics, train = {}, {}
        if not any(part in name for part in args.cv_only):
            # the final model on its own, with no features cached by the folds: its true training cost
            final_sets = [*sets, "export.formats=[]", "train.progress=epochs", "train.tensorboard=false"]
            final = out.parent / (out.name + "__final")
            final_resume = (final / "report.json").is_file()
            result = (api.run("image-classify", out=final, resume=True, echo=echo) if final_resume else
                      api.run("image-classify", data=args.data, out=final, sets=final_sets, overwrite=True, echo=echo))
            metrics, train = result.metrics, result.report["stages"]["train"]
        fold_cpu = [f.get("cpu_seconds") for f in cv["per_fold"]]
        results[name] = {
            "sets": sets, "date": date.today().isoformat(), "cv": cv,
            "final_reported_accuracy": metrics.get("accuracy"),
            "final_reported_interval": metrics.get("accuracy_interval"),
            "final_reported_count": metrics.get("count"),
            "final_train_cpu_minutes": train.get("cpu_seconds", 0) / 60 if train else None,
            "final_train_wall_minutes": train["seconds"] / 60 if train else None,
            "fold_train_cpu_minutes": [c / 60 for c in fold_cpu] if all(c is not None for c in fold_cpu) else None,
            "this_call_cpu_minutes": (cpu_seconds() - cpu) / 60, "this_call_wall_minutes": (time.perf_counter() - started) / 60,
            "resumed": resume,
        }
        results_file.parent.mkdir(parents=True, exist_ok=True)
        latest = json.loads(results_file.read_text()) if results_file.is_file() else {}  # rows another run wrote
        results = {**latest, name: results[name]}
        results_file.write_text(json.dumps(results, indent=2))
    print(table(results))


def table(results: dict) -> str:
    import numpy as np

    rows = ["| recipe | 5-fold CV accuracy, pooled (95% interval) | mean ± sd over folds | linear probe on the same folds "
            "| final run's own reported accuracy | reported − CV | final model training, CPU-min |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        cv, pooled = r["cv"], r["cv"]["pooled"]
        low, high = pooled["accuracy_interval"]
        probe = cv.get("probe_baseline")
        probe_text = f"{probe['pooled']['accuracy']:.3f}" if probe else "–"
        reported = r["final_reported_accuracy"]
        reported_text = f"{reported:.3f} ({r['final_reported_count']} images)" if reported is not None else "not run"
        gap_text = f"{(reported - pooled['accuracy']) * 100:+.1f} points" if reported is not None else "–"
        cpu = r["final_train_cpu_minutes"]
        if cpu is None and r.get("fold_train_cpu_minutes"):
            cpu_text = f"{np.mean(r['fold_train_cpu_minutes']):.1f} per fold (no final run)"
        else:
            cpu_text = f"{cpu:.1f}" if cpu is not None else "–"
        rows.append(f"| {name} | {pooled['accuracy']:.3f} ({pooled['correct']}/{pooled['count']}; {low:.3f}–{high:.3f}) | "
                    f"{cv['accuracy_mean']:.3f} ± {cv['accuracy_sd']:.3f} | {probe_text} | "
                    f"{reported_text} | {gap_text} | {cpu_text} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
