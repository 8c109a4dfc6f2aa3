"""Benchmark (issue 25): where a multi-label cross-validation loses micro-F1, post hoc on its finished folds.

One command, from the repository root with the venv active, on the output folder of a `train.cv_folds` run (for
example `python bench/multilabel_fashion.py`'s bench/results/multilabel, or a copy of it):

    python bench/multilabel_posthoc.py CV_FOLDER [--cache DIR]

For every finished fold it rebuilds the fold's model through the pipeline's own resume (stages load to train, the
phases' weights restored, nothing trained), checks that it reproduces the fold's saved validation scores, and keeps
the lse head's per-location logits of each held-out scene and of its mirror (DIR/K.npz, reused). No training.

It then scores, on the same scenes and the same fold models:
- poolings and mirrors: log-sum-exp at the trained sharpness and sharper, the maximum, the mirror averaged in
  (what `evaluate.tta=flip` ships): mAP per fold and pooled, micro-F1 at thresholds chosen on the fold itself
  (optimistic) and cross-fitted (chosen on the other folds, as `train.cv_folds` reports);
- threshold rules for the trained pooling: chosen on the fold itself, on the other folds (cross-fitted), the median
  of 200 bootstrap choices on the other folds, z-scores of the logits carried over from the other folds, on one half
  of the fold's own scenes applied to the other half (20 random halvings), and a fixed 0.5.
Results: bench/results/multilabel_posthoc.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from datetime import date
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cv_folder", type=Path)
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the folds' logits go (default: CV_FOLDER/posthoc)")
    args = parser.parse_args()
    cache = args.cache or args.cv_folder / "posthoc"
    folds = [location_logits(fold, cache) for fold in finished_folds(args.cv_folder)]
    if len(folds) < 2:
        sys.exit(f"{args.cv_folder}: {len(folds)} finished fold(s); cross-fitting needs at least 2")
    sharpness = float(folds[0]["sharpness"])
    record = {"date": str(date.today()), "command": "python bench/multilabel_posthoc.py " + " ".join(sys.argv[1:]),
              "folds": len(folds), "trained_sharpness": sharpness,
              "poolings": poolings(folds, sharpness), "threshold_rules": threshold_rules(folds, sharpness)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multilabel_posthoc.json").write_text(json.dumps(record, indent=1))
    print(f"{len(folds)} folds, trained sharpness r {sharpness:g}")
    print("| pooling | mAP per fold | pooled mAP | micro-F1, own thresholds (per fold) | micro-F1, cross-fitted |")
    print("| --- | --- | ---: | --- | ---: |")
    for name, row in record["poolings"].items():
        print(f"| {name} | {_list(row['fold_map'])} | {row['pooled_map']:.3f} | {_list(row['fold_micro_f1_own'])} | "
              f"{row['pooled_micro_f1_crossfit']:.3f} |")
    print("\n| threshold rule (trained pooling) | micro-F1 per fold | pooled micro-F1 |\n| --- | --- | ---: |")
    for name, row in record["threshold_rules"].items():
        print(f"| {name} | {_list(row['per_fold'])} | {row['pooled']:.3f} |")


def _list(values: list[float]) -> str:
    return ", ".join(f"{value:.3f}" for value in values)


def finished_folds(cv_folder: Path) -> list[Path]:
    from dlpipe.pipelines.training.crossval import FOLDS_DIR, fold_finished

    folds = sorted((cv_folder / FOLDS_DIR).iterdir(), key=lambda path: int(path.name))
    return [fold for fold in folds if fold_finished(fold)]


def location_logits(fold: Path, cache: Path) -> dict[str, np.ndarray]:
    """The fold model's per-location logits on its held-out scenes, plain and mirrored (cached in cache/K.npz)."""
    saved = cache / f"{fold.name}.npz"
    if not saved.is_file():
        import keras

        from dlpipe.models.classifier import LOCATION_LOGITS_LAYER_NAME, LSE_POOL_LAYER_NAME
        from dlpipe.pipelines.api import resolve
        from dlpipe.pipelines.catalog import get_pipeline
        from dlpipe.pipelines.config import load_yaml
        from dlpipe.pipelines.engine import run_pipeline

        work = cache / f"run_{fold.name}"  # a copy: resuming writes report.json, and the fold stays as it was
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(fold, work, ignore=shutil.ignore_patterns("run.lock", "explain", "report.html", "logs"))
        spec = get_pipeline("image-multilabel")
        saved_config = work / "config.yaml"
        config = resolve(spec.name, spec.stage_configs(), [(str(saved_config), load_yaml(saved_config))],
                         task=spec.task)
        config = dataclasses.replace(config, stages=("load", "model", "preprocess", "augment", "train"))
        ctx = run_pipeline(spec, config, work, resume=True, echo=lambda line: None)
        names = [layer.name for layer in ctx.model.layers]
        if LOCATION_LOGITS_LAYER_NAME not in names:
            sys.exit(f"{fold}: not an lse-head model (model.pooling=lse); nothing to pool post hoc")
        logits = keras.Model(ctx.model.inputs, ctx.model.get_layer(LOCATION_LOGITS_LAYER_NAME).output)
        pixels = np.concatenate([batch[0].numpy() for batch in ctx.val_data.batch(16)])
        scores = ctx.model.predict(pixels, batch_size=8, verbose=0)
        recorded = np.asarray(json.loads((fold / "metrics.json").read_text(encoding="utf-8"))["predictions"]["scores"])
        if np.abs(scores - recorded).max() > 1e-4:
            sys.exit(f"{fold}: the rebuilt model does not reproduce the fold's validation scores")
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(saved, plain=logits.predict(pixels, batch_size=8, verbose=0),
                 mirror=logits.predict(pixels[:, :, ::-1], batch_size=8, verbose=0),
                 truth=np.asarray(ctx.val.labels), sharpness=ctx.model.get_layer(LSE_POOL_LAYER_NAME).sharpness)
        shutil.rmtree(work, ignore_errors=True)
    return dict(np.load(saved))


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def _lse(logits: np.ndarray, sharpness: float) -> np.ndarray:
    """The head's own pooling layer (models/layers.py), at any sharpness."""
    from dlpipe.models.layers import LogSumExpPooling

    return np.asarray(LogSumExpPooling(sharpness)(logits), np.float64)


def _micro_f1(truth: np.ndarray, decided: np.ndarray) -> float:
    from dlpipe.models.multilabel_metrics import f1_scores

    return f1_scores(truth, decided)[0]


def poolings(folds: list[dict], sharpness: float) -> dict[str, dict]:
    from dlpipe.models.multilabel_metrics import choose_thresholds, crossfit_thresholds, multilabel_report

    variants = {
        f"log-sum-exp r {sharpness:g} (trained)": lambda d: _sigmoid(_lse(d["plain"], sharpness)),
        "the same, mirror averaged in (evaluate.tta=flip)":
            lambda d: (_sigmoid(_lse(d["plain"], sharpness)) + _sigmoid(_lse(d["mirror"], sharpness))) / 2,
        f"log-sum-exp r {2 * sharpness:g}": lambda d: _sigmoid(_lse(d["plain"], 2 * sharpness)),
        "maximum": lambda d: _sigmoid(d["plain"].max(axis=(1, 2))),
    }
    names = [f"label{j}" for j in range(folds[0]["truth"].shape[1])]
    truth = np.concatenate([d["truth"] for d in folds])
    fold_of = np.concatenate([np.full(len(d["truth"]), k) for k, d in enumerate(folds)])
    out = {}
    for name, score in variants.items():
        fold_scores = [score(d) for d in folds]
        per = [multilabel_report(d["truth"], s, choose_thresholds(d["truth"], s), names, 0, 0)
               for d, s in zip(folds, fold_scores)]
        scores = np.concatenate(fold_scores)
        pooled = multilabel_report(truth, scores, crossfit_thresholds(truth, scores, fold_of), names, 0, 0)
        out[name] = {"fold_map": [r["map"] for r in per], "fold_micro_f1_own": [r["micro_f1"] for r in per],
                     "pooled_map": pooled["map"], "pooled_micro_f1_crossfit": pooled["micro_f1"]}
    return out


def threshold_rules(folds: list[dict], sharpness: float, seed: int = 0) -> dict[str, dict]:
    from dlpipe.models.multilabel_metrics import choose_thresholds

    rng = np.random.default_rng(seed)
    scores = [_sigmoid(_lse(d["plain"], sharpness)) for d in folds]
    truths = [d["truth"] for d in folds]

    def others(k: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate([t for j, t in enumerate(truths) if j != k]),
                np.concatenate([s for j, s in enumerate(scores) if j != k]))

    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    def own(k): return choose_thresholds(truths[k], scores[k])
    def crossfit(k): return choose_thresholds(*others(k))

    def bagged(k):
        truth, score = others(k)
        draws = [rng.integers(0, len(truth), len(truth)) for _ in range(200)]
        return np.median([choose_thresholds(truth[i], score[i]) for i in draws], axis=0)

    def z_carried(k):  # the other folds' thresholds as z-scores of their logits, put on this fold's logits (no labels)
        truth, score = others(k)
        z = (logit(choose_thresholds(truth, score)) - logit(score).mean(0)) / logit(score).std(0)
        return _sigmoid(logit(scores[k]).mean(0) + z * logit(scores[k]).std(0))

    def fixed(k): return np.full(scores[k].shape[1], 0.5)
    rules = {"own thresholds (optimistic)": own, "cross-fitted (what train.cv_folds reports)": crossfit,
             "cross-fitted, median of 200 bootstrap choices": bagged,
             "cross-fitted as z-scores of the logits": z_carried, "fixed 0.5": fixed}
    out = {}
    for name, rule in rules.items():
        decided = [scores[k] >= rule(k) for k in range(len(folds))]
        out[name] = {"per_fold": [_micro_f1(truths[k], decided[k]) for k in range(len(folds))],
                     "pooled": _micro_f1(np.concatenate(truths), np.concatenate(decided))}
    halves = []  # thresholds chosen on half of the fold's own scenes, applied to the other half, and back
    for k in range(len(folds)):
        runs = []
        for _ in range(20):
            order = rng.permutation(len(truths[k]))
            a, b = order[: len(order) // 2], order[len(order) // 2:]
            decided = np.zeros_like(truths[k], bool)
            decided[b] = scores[k][b] >= choose_thresholds(truths[k][a], scores[k][a])
            decided[a] = scores[k][a] >= choose_thresholds(truths[k][b], scores[k][b])
            runs.append(_micro_f1(truths[k], decided))
        halves.append(float(np.mean(runs)))
    out["own scenes, one half chooses for the other (20 halvings; pooled: mean of folds)"] = {
        "per_fold": halves, "pooled": float(np.mean(halves))}
    return out


if __name__ == "__main__":
    main()
