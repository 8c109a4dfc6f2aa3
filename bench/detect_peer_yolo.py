"""Benchmark (issue 28): the side-by-side peer, Ultralytics YOLO from its model yaml, on dlpipe's detection folds.

Run with the bench-only venv (bench/setup_detect_peer.sh), from the repository root:

    nice -n 10 .venv-bench-yolo/bin/python bench/detect_peer_yolo.py [--folds 0,1,2,3,4] [--cpu-minutes 10]

Each fold (the brief's: perm = default_rng(0).permutation(300), fold k validates on sorted(perm[k::5]) of
annotations.json's images, trains on the rest) runs in a fresh process: the COCO JSON becomes YOLO's layout in a
temporary folder (symlinks to the photos, one label file per photo, empty for photos without boxes), the model is
built from its yaml (no pretrained weights: none install offline) and trained with ultralytics' own recipe and
time-budget mode, whose clock is this process's user + system CPU time (itself and its children) instead of wall
time: the budget counts from the process's start (imports and data setup included); ultralytics sizes its epochs
and LR schedule to it after the first epoch and stops when it is spent. Its per-epoch validation is off and its
required val split is 4 of the fold's training photos, so the held-out photos choose nothing. The last weights
then predict the held-out photos (conf 0.001, 100 boxes per photo) and dlpipe's own scorer
(bench/detect_peer_score.py, run in the main .venv: pycocotools via dlpipe.models.tasks.detect.metrics) scores
them, per fold and pooled over all 300 out-of-fold photos. Nothing reaches the network: YOLO_OFFLINE is set, the
font check is answered with matplotlib's own font, AMP (whose check downloads weights) is off, and every socket
connection is refused and recorded. Results: bench/results/detect_peer_yolo.json and .md (markdown snippet).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "detection_fashion"
RESULTS = ROOT / "bench" / "results"
MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"
MONITOR_PHOTOS = 4  # ultralytics insists on a val split; these few training photos keep it off the held-out ones


def folds_of(count: int, folds: int = 5) -> list[list[int]]:
    """The brief's folds: validation indices of fold k are sorted(perm[k::5]) with perm from default_rng(0)."""
    import numpy as np

    perm = np.random.default_rng(0).permutation(count)
    return [sorted(int(i) for i in perm[k::folds]) for k in range(folds)]


def cpu_seconds() -> float:
    """User + system CPU of this process and its children (finished ones by rusage, live ones by psutil)."""
    import psutil

    own = resource.getrusage(resource.RUSAGE_SELF)
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    live = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            live += times.user + times.system
        except psutil.Error:
            pass
    return own.ru_utime + own.ru_stime + done.ru_utime + done.ru_stime + live


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


# --- the fold process ------------------------------------------------------------------------------

def yolo_layout(data: Path, fold: int, work: Path) -> tuple[Path, list[str], list[str]]:
    """COCO JSON -> YOLO folders for one fold: (dataset yaml, held-out photo paths, class names)."""
    document = json.loads((data / "annotations.json").read_text())
    categories = sorted(document["categories"], key=lambda c: c["id"])
    names = [c["name"] for c in categories]
    index_of = {c["id"]: i for i, c in enumerate(categories)}
    images = document["images"]
    boxes: dict[int, list[str]] = {image["id"]: [] for image in images}
    sizes = {image["id"]: (image["width"], image["height"]) for image in images}
    for a in document["annotations"]:
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        boxes[a["image_id"]].append(f"{index_of[a['category_id']]} {(x + bw / 2) / w:.6f} {(y + bh / 2) / h:.6f} "
                                    f"{bw / w:.6f} {bh / h:.6f}")
    held_out = set(folds_of(len(images))[fold])
    train = [image for i, image in enumerate(images) if i not in held_out]
    splits = {"train": train, "monitor": train[:MONITOR_PHOTOS]}
    for split, members in splits.items():
        (work / "images" / split).mkdir(parents=True)
        (work / "labels" / split).mkdir(parents=True)
        for image in members:
            name = image["file_name"]
            (work / "images" / split / name).symlink_to(data / "images" / name)
            (work / "labels" / split / Path(name).with_suffix(".txt")).write_text(
                "".join(line + "\n" for line in boxes[image["id"]]))
    yaml = work / "data.yaml"
    yaml.write_text(f"path: {work}\ntrain: images/train\nval: images/monitor\nnames:\n"
                    + "".join(f"  {i}: {name}\n" for i, name in enumerate(names)))
    return yaml, [str(data / "images" / images[i]["file_name"]) for i in sorted(held_out)], names


def refuse_network(attempts: list[str]) -> None:
    """Every connection or name look-up fails at once (as offline) and is recorded, so a download cannot hide."""
    import socket

    def refused(what: str):
        def call(*args, **kwargs):
            attempts.append(f"{what} {args[1] if what == 'connect' else args[0]!r}")
            raise OSError(f"detect peer: network refused ({what})")
        return call

    socket.getaddrinfo = refused("getaddrinfo")
    socket.create_connection = refused("create_connection")
    socket.socket.connect = refused("connect")


def quiet_ultralytics(config: Path, torchvision_stand_in: bool) -> None:
    """Offline settings before ultralytics is imported, its font check answered locally, and (when PyPI's CUDA
    torchvision cannot load beside the CPU torch) a stand-in torchvision whose only op on this path, nms, is
    ultralytics' own pure-torch copy (TorchNMS.nms: what ultralytics runs when torchvision is absent)."""
    os.environ.update({"YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(config), "MPLCONFIGDIR": str(config / "mpl"),
                       "YOLO_VERBOSE": "True"})
    import types

    from matplotlib import font_manager

    font = font_manager.findfont("DejaVu Sans")
    from ultralytics.utils import checks

    checks.check_font = lambda *args, **kwargs: Path(font)
    import ultralytics.data.utils as data_utils
    from ultralytics.utils import plotting

    data_utils.check_font = plotting.check_font = checks.check_font
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
    if torchvision_stand_in:
        from ultralytics.utils.nms import TorchNMS

        module, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        ops.nms = TorchNMS.nms
        module.ops, module.__version__ = ops, "stand-in"
        sys.modules.update({"torchvision": module, "torchvision.ops": ops})


class CpuClock:
    """Stands in for the `time` module inside ultralytics' trainer: its budget (`time=` hours) and epoch
    estimates then run on CPU seconds of this process rather than on the wall clock."""

    @staticmethod
    def time() -> float:
        return cpu_seconds()


def train_fold(args: argparse.Namespace) -> dict:
    """One fold, in this process: layout, train within the CPU budget, predict the held-out photos."""
    attempts: list[str] = []
    refuse_network(attempts)
    work = Path(tempfile.mkdtemp(prefix=f"detect_peer_fold{args.run_fold}_"))
    try:
        quiet_ultralytics(work / "config", args.torchvision == "stand-in")
        import torch
        import ultralytics
        import ultralytics.engine.trainer as trainer_module
        from ultralytics import YOLO

        yaml, held_out, names = yolo_layout(Path(args.data), args.run_fold, work / "data")
        budget_s = args.cpu_minutes * 60.0
        trainer_module.time = CpuClock  # the trainer's only use of `time` is time.time()

        def spend_from_process_start(trainer) -> None:  # the budget counts imports and setup too
            trainer.args.time = max(budget_s - trainer.train_time_start, 1.0) / 3600

        model = YOLO(args.model)
        model.add_callback("on_train_start", spend_from_process_start)
        train_args = {"data": str(yaml), "imgsz": args.imgsz, "batch": args.batch, "epochs": args.max_epochs,
                      "time": budget_s / 3600, "device": "cpu", "workers": 0, "amp": False, "val": False,
                      "plots": False, "pretrained": False, "seed": args.seed, "deterministic": True,
                      "project": str(work / "runs"), "name": "train", "exist_ok": True, "verbose": False}
        wall = time.time()
        model.train(**train_args)
        train_cpu, train_wall = cpu_seconds(), time.time() - wall
        trainer = model.trainer
        rows, predict_cpu = predict(YOLO(str(trainer.last)), held_out, args)
        return {"fold": args.run_fold, "model": args.model, "train_args": train_args, "class_names": names,
                "images": [Path(p).name for p in held_out], "rows": rows, "budget_cpu_s": budget_s,
                "train_cpu_s": train_cpu, "train_wall_s": train_wall, "predict_cpu_s": predict_cpu,
                "epochs_run": trainer.epoch + 1, "epochs_planned": trainer.epochs,
                "train_photos": len(trainer.train_loader.dataset), "torch_threads": torch.get_num_threads(),
                "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__,
                             "torchvision": args.torchvision, "python": platform.python_version()},
                "network_attempts": attempts, "process_cpu_s": cpu_seconds()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def predict(model, photos: list[str], args: argparse.Namespace) -> tuple[list[list[list[float]]], float]:
    """COCO-style detections (conf 0.001, class-wise NMS at --nms-iou, 100 per photo) in the photos' pixels."""
    start = cpu_seconds()
    rows = []
    for result in model.predict(photos, imgsz=args.imgsz, conf=0.001, iou=args.nms_iou, max_det=100, device="cpu",
                                batch=8, verbose=False, stream=True):
        boxes = result.boxes
        rows.append([[*map(float, xyxy), float(score), int(cls)] for xyxy, score, cls
                     in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())])
    return rows, cpu_seconds() - start


# --- the driver ------------------------------------------------------------------------------------

def torchvision_usable() -> bool:
    """Whether the venv's torchvision imports and runs nms (PyPI's CUDA build does not beside a CPU torch)."""
    probe = "import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.ones(1), 0.5)"
    return subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True).returncode == 0


def run_fold(fold: int, args: argparse.Namespace, tv: str, out: Path) -> dict:
    """A fresh process per fold, so one fold's CPU time and ultralytics' state never mix with another's."""
    command = [sys.executable, __file__, "--run-fold", str(fold), "--fold-out", str(out), "--torchvision", tv,
               "--data", args.data, "--cpu-minutes", str(args.cpu_minutes), "--model", args.model,
               "--imgsz", str(args.imgsz), "--batch", str(args.batch), "--nms-iou", str(args.nms_iou),
               "--max-epochs", str(args.max_epochs), "--seed", str(args.seed)]
    wall = time.time()
    log = out.with_suffix(".log")
    with open(log, "w") as stream:
        code = subprocess.run(command, check=False, stdout=stream, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"detect peer: fold {fold} failed (exit {code}); its log: {log}")
    result = json.loads(out.read_text())
    result["process_wall_s"] = time.time() - wall
    return result


def score(data: str, fold_files: list[Path]) -> dict:
    """dlpipe's own scorer, in the main .venv (dlpipe and pycocotools live there, not in the bench venv)."""
    command = [str(MAIN_PYTHON), str(ROOT / "bench" / "detect_peer_score.py"), "--data", data,
               *map(str, fold_files)]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"detect peer: scoring failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout)


def summary(folds: list[dict], scores: dict, args: argparse.Namespace) -> dict:
    import numpy as np

    per_fold = []
    for fold, report in zip(folds, scores["folds"]):
        per_fold.append({"fold": fold["fold"], "map": report["map"], "map_interval": report["map_interval"],
                         "ap50": report["ap50"], "ap50_interval": report["ap50_interval"], "ap75": report["ap75"],
                         "train_cpu_min": fold["train_cpu_s"] / 60, "process_cpu_min": fold["process_cpu_s"] / 60,
                         "train_wall_min": fold["train_wall_s"] / 60, "predict_cpu_s": fold["predict_cpu_s"],
                         "epochs_run": fold["epochs_run"], "epochs_planned": fold["epochs_planned"],
                         "train_photos": fold["train_photos"], "held_out_photos": len(fold["images"]),
                         "network_attempts": fold["network_attempts"], "per_class": report["per_class"]})
    maps, ap50s = np.array([f["map"] for f in per_fold]), np.array([f["ap50"] for f in per_fold])
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
            "model": args.model, "imgsz": args.imgsz, "batch": args.batch, "budget_cpu_min": args.cpu_minutes,
            "nms_iou": args.nms_iou, "parallel": args.parallel, "versions": folds[0]["versions"],
            "train_args": folds[0]["train_args"],
            "torch_threads": folds[0]["torch_threads"], "host": {"cpus": os.cpu_count(), "load": os.getloadavg()},
            "folds": per_fold,
            "mean": {"map": float(maps.mean()), "ap50": float(ap50s.mean()),
                     "map_sd": float(maps.std(ddof=1)) if len(maps) > 1 else None,
                     "ap50_sd": float(ap50s.std(ddof=1)) if len(ap50s) > 1 else None,
                     "map_range": [float(maps.min()), float(maps.max())],
                     "ap50_range": [float(ap50s.min()), float(ap50s.max())]},
            "pooled_out_of_fold": scores.get("pooled"), "metric": scores["metric"]}


def markdown(result: dict) -> str:
    lines = ["| fold | mAP (95% interval) | AP50 (95% interval) | AP75 | training CPU-min | epochs | wall min |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for f in result["folds"]:
        lo, hi = f["map_interval"] or (f["map"], f["map"])
        lo50, hi50 = f["ap50_interval"] or (f["ap50"], f["ap50"])
        lines.append(f"| {f['fold']} | {f['map']:.3f} ({lo:.3f}-{hi:.3f}) | {f['ap50']:.3f} ({lo50:.3f}-{hi50:.3f}) "
                     f"| {f['ap75']:.3f} | {f['train_cpu_min']:.2f} | {f['epochs_run']} | {f['train_wall_min']:.1f} |")
    m = result["mean"]
    sd = (lambda v: f" ± {v:.3f} sd" if v is not None else "")
    lines.append(f"| mean of folds | {m['map']:.3f}{sd(m['map_sd'])} | {m['ap50']:.3f}{sd(m['ap50_sd'])} | | "
                 f"{sum(f['train_cpu_min'] for f in result['folds']) / len(result['folds']):.2f} | | |")
    pooled = result["pooled_out_of_fold"]
    if pooled:
        lo, hi = pooled["map_interval"]
        lo50, hi50 = pooled["ap50_interval"]
        lines.append(f"| pooled, {pooled['count']} out-of-fold photos | {pooled['map']:.3f} ({lo:.3f}-{hi:.3f}) | "
                     f"{pooled['ap50']:.3f} ({lo50:.3f}-{hi50:.3f}) | {pooled['ap75']:.3f} | | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--folds", default="0,1,2,3,4", help="comma-separated fold numbers (0-4)")
    parser.add_argument("--cpu-minutes", type=float, default=10.0, help="training budget per fold, user+system CPU")
    parser.add_argument("--model", default="yolo11n.yaml", help="an ultralytics model yaml (built untrained)")
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--nms-iou", type=float, default=0.7, help="ultralytics' validation default")
    parser.add_argument("--max-epochs", type=int, default=300, help="cap; the CPU budget decides first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=1, help="folds trained at once (each uses 1 thread)")
    parser.add_argument("--out", default=str(RESULTS / "detect_peer_yolo.json"))
    parser.add_argument("--run-fold", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fold-out", help=argparse.SUPPRESS)
    parser.add_argument("--torchvision", default="real", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_fold is not None:
        write_atomic(Path(args.fold_out), json.dumps(train_fold(args)))
        return
    tv = "real" if torchvision_usable() else "stand-in"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done: dict[int, dict] = {}
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        running = {pool.submit(run_fold, k, args, tv, fold_file(out, k)): k for k in map(int, args.folds.split(","))}
        for finished in as_completed(running):
            done[running[finished]] = finished.result()
            folds = [done[k] for k in sorted(done)]
            result = summary(folds, score(args.data, [fold_file(out, k) for k in sorted(done)]), args)
            write_atomic(out, json.dumps(result, indent=1))
            write_atomic(out.with_suffix(".md"), markdown(result))
            f = next(f for f in result["folds"] if f["fold"] == running[finished])
            print(f"fold {f['fold']}: mAP {f['map']:.3f}, AP50 {f['ap50']:.3f}, training {f['train_cpu_min']:.2f} "
                  f"CPU-min ({f['epochs_run']} epochs, {f['train_wall_min']:.1f} min wall), network attempts "
                  f"{len(f['network_attempts'])}", flush=True)
    print(markdown(result), end="")
    print(f"detect peer: {out} and {out.with_suffix('.md')}")


def fold_file(out: Path, fold: int) -> Path:
    return out.with_name(f"{out.stem}_fold{fold}.json")

if __name__ == "__main__":
    main()
