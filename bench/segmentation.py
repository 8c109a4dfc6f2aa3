"""Benchmark: segmentation (issue 17, part 2): the person segmenter's export, and U-Net transfer learning.

One command, from the repository root with the venv active (after scripts/setup.sh):

    python bench/segmentation.py [--epochs 5] [--finetune-epochs 3] [--image-size 128] [--skip-training]

1. Person segmenter: the packaged .tflite (`package_person_segmenter`: dlpipe's labels and
   preprocessing embedded, graph untouched) against the original `selfie_segmentation.tflite` from
   the mediapipe==0.10.21 wheel, on the same prepared inputs: person IoU and pixel agreement of the
   masks, and images/s of `dlpipe predict --out` (decode, model, mask PNG + overlay at photo size)
   and of the bare model on prepared batches. Photos: the shared ant/bee photos plus Debian
   darknet's sample photos (person.jpg, horses.jpg, ...) when that package is installed.
2. The mask set (written under $DLPIPE_CACHE/segment-bench/hymenoptera-masks/, never into shared/):
   each shared ant/bee photo is cut out with OpenCV's GrabCut (initialised with a rectangle 6% in
   from every border, 4 iterations, on a copy at most 200 px wide), the largest connected region
   kept and holes filled; a mask is kept only if that region covers 3-60% of the photo and does
   not touch more than half of the border (GrabCut grabbed the background). Class = the photo's
   folder (1 ant, 2 bee), 0 background. Only the first PER_CLASS photos of each folder are cut.
   Every candidate was then checked by eye on contact sheets of overlays, and those whose cut is
   mostly background, misses most of the insect or merges it with a flower or leaf are listed in
   HAND_REJECTED; the rest form the set. The masks are GrabCut's outlines, not hand-drawn ones.
3. Transfer learning on that set: `dlpipe run segment` with the EfficientNet-Lite0 encoder
   (ImageNet, frozen then top 4 blocks fine-tuned) vs the same U-Net from scratch (weights none,
   one phase with the same total epochs): mean IoU with its 95% bootstrap interval over images.

Results: bench/results/segmentation.json; BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "hymenoptera" / "train"
DARKNET = Path("/usr/share/darknet/data")
RESULTS = ROOT / "bench" / "results" / "segmentation.json"
CLASSES = ["background", "ant", "bee"]
PER_CLASS = 70  # the first photos of each folder (sorted): GrabCut on all 245 takes long on this machine


def grabcut_mask(photo, max_width: int = 200):
    """Foreground (bool, photo size) of one photo by GrabCut, or None when the cut looks wrong."""
    import cv2
    import numpy as np

    h, w = photo.shape[:2]
    scale = min(1.0, max_width / w)
    small = cv2.resize(photo, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    rect = (int(sw * 0.06), int(sh * 0.06), int(sw * 0.88), int(sh * 0.88))
    mask = np.zeros((sh, sw), np.uint8)
    cv2.grabCut(cv2.cvtColor(small, cv2.COLOR_RGB2BGR), mask, rect, np.zeros((1, 65)), np.zeros((1, 65)), 4,
                cv2.GC_INIT_WITH_RECT)
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if count < 2:
        return None
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    region = (labels == biggest).astype(np.uint8)
    # fill holes: whatever the background flood fill from the border does not reach is inside the region
    flood = region.copy()
    cv2.floodFill(flood, np.zeros((sh + 2, sw + 2), np.uint8), (0, 0), 2)
    region[flood == 0] = 1
    fraction = region.mean()
    border = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]]).mean()
    if not 0.03 <= fraction <= 0.60 or border > 0.5:
        return None
    return cv2.resize(region, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


# Candidates rejected by eye (contact sheets of every candidate, 2026-12-01): the cut is mostly background
# (a flower, a leaf, a stone), misses most of the insect, or merges it with what it sits on.
HAND_REJECTED: set[str] = {
    "ant_1099452230_d1949d3250", "ant_1225872729_6f0856588f", "ant_1269756697_0bce92cdab",
    "ant_1286984635_5119e80de1", "ant_1473187633_63ccaacea6", "ant_148715752_302c84f5a4",
    "ant_1693954099_46d4c20605", "ant_178538489_bec7649292", "ant_1917341202_d00a7f9af5",
    "ant_1924473702_daa9aacdbe", "ant_201558278_fe4caecc76", "ant_2019439677_2db655d361", "ant_20935278_9190345f6b",
    "ant_24335309_c5ea483bb8", "ant_245647475_9523dfd13e", "ant_334167043_cbd1adaeb9", "ant_342438950_a3da61deab",
    "ant_36439863_0bec9f554f", "ant_374435068_7eee412ec4", "ant_386190770_672743c9a7", "ant_408393566_b5b694119b",
    "ant_424119020_6d57481dab", "ant_460372577_f2f6a8c9fc", "bee_1092977343_cb42b38d62",
    "bee_1097045929_1753d1c765", "bee_1232245714_f862fbe385", "bee_1295655112_7813f37d21",
    "bee_150013791_969d9a968b", "bee_154600396_53e1252e52", "bee_174142798_e5ad6d76e0", "bee_196658222_3fffd79c67",
    "bee_2031225713_50ed499635", "bee_2037437624_2d7bce461f", "bee_2053200300_8911ef438a",
    "bee_208702903_42fb4d9748", "bee_2467959963_a7831e9ff0", "bee_2477349551_e75c97cf4d",
    "bee_2486729079_62df0920be", "bee_2486746709_c43cec0e42", "bee_2493379287_4100e1dacc",
    "bee_2538361678_9da84b77e3", "bee_2551813042_8a070aeb2b", "bee_2580598377_a4caecdb54",
    "bee_2610833167_79bf0bcae5", "bee_2617161745_fa3ebe85b4", "bee_2625499656_e3415e374d",
    "bee_2651621464_a2fa8722eb", "bee_266644509_d30bb16a1b", "bee_2683605182_9d2a0c66cf",
    "bee_2728759455_ce9bb8cd7a", "bee_2765347790_da6cf6cb40", "bee_2781170484_5d61835d63",
    "bee_279113587_b4843db199"
}


def checked_mask_set(candidates: Path, target: Path) -> dict:
    """The candidates minus HAND_REJECTED, copied to `target` (images/, masks/, classes.txt)."""
    shutil.rmtree(target, ignore_errors=True)
    (target / "images").mkdir(parents=True)
    (target / "masks").mkdir()
    kept = 0
    for mask in sorted((candidates / "masks").glob("*.png")):
        if mask.stem in HAND_REJECTED:
            continue
        shutil.copy(mask, target / "masks" / mask.name)
        shutil.copy(candidates / "images" / f"{mask.stem}.jpg", target / "images" / f"{mask.stem}.jpg")
        kept += 1
    shutil.copy(candidates / "classes.txt", target / "classes.txt")
    per_class = {name: sum(1 for m in (target / "masks").glob(f"{name}_*.png")) for name in CLASSES[1:]}
    return {"hand_checked_kept": kept, "hand_rejected": len(HAND_REJECTED), "per_class": per_class}


def make_mask_set(target: Path) -> dict:
    """The ant/bee mask set under `target` (images/, masks/, classes.txt, contact_sheet.png); cached."""
    import numpy as np
    from PIL import Image

    from dlpipe.models.tasks.segment import overlay, palette_png

    done = target / "summary.json"
    if done.is_file():
        return json.loads(done.read_text())
    shutil.rmtree(target, ignore_errors=True)
    (target / "images").mkdir(parents=True)
    (target / "masks").mkdir()
    kept, rejected, sheet = 0, 0, []
    started = time.perf_counter()
    for label, folder in ((1, "ants"), (2, "bees")):
        for path in sorted((PHOTOS / folder).iterdir())[:PER_CLASS]:
            try:
                with Image.open(path) as image:
                    photo = np.asarray(image.convert("RGB"))
            except OSError:
                rejected += 1
                continue
            region = grabcut_mask(photo)
            if region is None:
                rejected += 1
                continue
            mask = np.where(region, label, 0).astype(np.uint8)
            stem = f"{folder[:-1]}_{path.stem}"
            Image.fromarray(photo).save(target / "images" / f"{stem}.jpg", quality=95)
            (target / "masks" / f"{stem}.png").write_bytes(palette_png(mask))
            kept += 1
            if len(sheet) < 24 and kept % 5 == 0:
                sheet.append(np.asarray(Image.fromarray(overlay(photo, mask)).resize((160, 120))))
    (target / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    if sheet:
        rows = [np.concatenate(sheet[i:i + 6], axis=1) for i in range(0, len(sheet) - len(sheet) % 6 or len(sheet), 6)]
        rows = [r for r in rows if r.shape[1] == rows[0].shape[1]]
        Image.fromarray(np.concatenate(rows, axis=0)).save(target / "contact_sheet.png")
    summary = {"kept": kept, "rejected": rejected, "seconds": round(time.perf_counter() - started, 1),
               "method": "GrabCut, rectangle 6% in, 4 iterations at 200 px wide, largest region, holes filled, 3-60% of the photo"}
    done.write_text(json.dumps(summary, indent=2))
    return summary


def person_segmenter_bench(work: Path) -> dict:
    """Packaged vs original selfie segmenter: mask IoU on the same inputs, and images/s."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from click.testing import CliRunner

    from dlpipe.models.pretrained import package_person_segmenter, person_segmenter_file
    from dlpipe.models.runtimes import default_threads, load_runtime
    from dlpipe.models.tasks.segment.metrics import agreement, confusion_per_image, iou_from_confusion
    from dlpipe.models.tasks.segment import mask_of
    from dlpipe.pipelines.cli import main

    photos = work / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for source in sorted(PHOTOS.rglob("*.jpg")) + (sorted(DARKNET.glob("*.jpg")) if DARKNET.is_dir() else []):
        shutil.copy(source, photos / f"{source.parent.name}_{source.name}")
    packaged = package_person_segmenter(work / "export")
    runtime = load_runtime(packaged)
    original = Interpreter(model_path=str(person_segmenter_file()), num_threads=default_threads())
    inputs = runtime.task.collect_inputs([str(photos)])
    ours, theirs, keys, model_seconds = [], [], [], 0.0
    for prepared in runtime.task.batches(inputs, runtime.preprocessing, 32):
        if not prepared.readable:
            continue
        batch = prepared.batch
        started = time.perf_counter()
        ours.append(runtime.predict(batch))
        model_seconds += time.perf_counter() - started
        original.resize_tensor_input(original.get_input_details()[0]["index"], list(batch.shape))
        original.allocate_tensors()
        original.set_tensor(original.get_input_details()[0]["index"], (batch / 255.0).astype(np.float32))
        original.invoke()
        theirs.append(original.get_tensor(original.get_output_details()[0]["index"]).copy())
        keys += prepared.readable
    ours_masks = [mask_of(o) for o in np.concatenate(ours)]
    their_masks = [mask_of(o) for o in np.concatenate(theirs)]
    person_iou = float(iou_from_confusion(confusion_per_image(their_masks, ours_masks, 2).sum(axis=0))[1])
    with_person = [k for k, m in zip(keys, their_masks) if m.mean() > 0.01]
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["predict", "--model", "person-segmenter", str(photos), "--out", str(work / "masks")])
    job_seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    return {"photos": len(keys), "photos_with_person_pixels": len(with_person), "person_iou": person_iou,
            **agreement(their_masks, ours_masks), "model_images_per_second": len(keys) / model_seconds,
            "predict_job_images_per_second": len(keys) / job_seconds,
            "darknet_photos": DARKNET.is_dir()}


def transfer_runs(data: Path, work: Path, args: argparse.Namespace) -> dict:
    from dlpipe.pipelines import api

    # the pipeline's own recipe (issue 33: a figure here is what `dlpipe run segment --data DIR` gives); only the
    # exports to compare and the log format are set, and any of --image-size/--epochs/--finetune-epochs given
    common = ["train.tensorboard=false", "train.progress=epochs", "export.formats=[keras,tflite]",
              "export.parity_sample=16"]
    common += [f"model.image_size={args.image_size}"] if args.image_size else []
    pretrained = [f"train.epochs={args.epochs}"] if args.epochs else []
    pretrained += [f"train.finetune_epochs={args.finetune_epochs}"] if args.finetune_epochs is not None else []
    runs = {
        "lite0_imagenet": [*common, *pretrained],
        "lite0_scratch": [*common, "model.weights=none"],
    }
    out = {}
    for name, sets in runs.items():
        if args.runs and name not in args.runs:
            continue
        started = time.perf_counter()
        run_dir = work / name
        api.run("segment", data=str(data), out=run_dir, sets=sets, overwrite=True, echo=print)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        record = json.loads((run_dir / "artifacts.json").read_text()).get("model.tflite", {})
        out[name] = {"mean_iou": metrics["mean_iou"], "mean_iou_interval": metrics["mean_iou_interval"],
                     "per_class_iou": {k: v["iou"] for k, v in metrics["per_class"].items()},
                     "per_class_iou_interval": {k: v["iou_interval"] for k, v in metrics["per_class"].items()},
                     "pixel_accuracy": metrics["pixel_accuracy"], "val_images": metrics["count"],
                     "tflite_parity": record.get("parity"), "seconds": round(time.perf_counter() - started, 1),
                     "sets": sets}
        samples = run_dir / "sample_predictions.png"
        if samples.is_file():
            shutil.copy(samples, RESULTS.parent / f"segmentation_{name}_samples.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="default: the segment pipeline's own")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default: the segment pipeline's own")
    parser.add_argument("--image-size", type=int, default=None, help="default: the segment pipeline's own")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--runs", nargs="*", default=[], help="only these transfer runs (lite0_imagenet, lite0_scratch); "
                                                               "the others keep their results from the last run")
    parser.add_argument("--skip-person", action="store_true", help="keep the person segmenter's results from the last run")
    args = parser.parse_args()
    from dlpipe.data.builtin_datasets import cache_dir

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results: dict = {**previous, "date": date.today().isoformat(), "command": "python bench/segmentation.py",
                     "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="dlpipe-segbench-") as tmp:
        if not args.skip_person:
            results["person_segmenter"] = person_segmenter_bench(Path(tmp) / "person")
        print(json.dumps(results.get("person_segmenter"), indent=2))
        candidates = cache_dir() / "segment-bench" / "hymenoptera-masks-candidates"
        data = cache_dir() / "segment-bench" / "hymenoptera-masks"
        results["mask_set"] = {**make_mask_set(candidates), **checked_mask_set(candidates, data), "folder": str(data)}
        print(json.dumps(results["mask_set"], indent=2))
        if not args.skip_training:
            results["transfer"] = {**results.get("transfer", {}), **transfer_runs(data, Path(tmp) / "runs", args)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
