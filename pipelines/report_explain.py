"""Why the model erred: Grad-CAM heat maps (image runs) and word attributions (text runs) for the report page's
worst errors, written at the end of a run to OUT/explain/ so `dlpipe report` can show them without TensorFlow.

Heat maps come from the exported model in memory (`models/gradcam.py`, on the backbone's last feature map);
words are scored by occlusion: how much the probability of the wrong answer falls when the word is left out,
measured with the run's own artifact (any format: the method needs only predictions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dlpipe import atomic
from dlpipe.pipelines.report_gallery import WORST, worst_errors, worst_multilabel
from dlpipe.pipelines.stage import RunContext

EXPLAIN_DIR = "explain"
EXPLAIN_FILE = "explain.json"
MAX_WORDS = 64  # words scored per sentence (one prediction each)
CHUNK = 32  # sentences per prediction call


def explain_worst_errors(ctx: RunContext) -> str | None:
    """Write OUT/explain/explain.json (and the heat map PNGs) for the worst errors; a line saying what was done."""
    task = str(ctx.report.get("task", ""))
    if task == "multilabel":  # each photo's most confident wrong label
        errors = [{"input": path, "predicted": wrong[0][1]} for path, wrong in worst_multilabel(ctx.metrics)[0]]
    else:
        errors = worst_errors(ctx.metrics, WORST)
    if task not in ("image", "text", "multilabel") or not errors or ctx.model is None:
        return None
    folder = ctx.out_dir / EXPLAIN_DIR
    try:
        if task in ("image", "multilabel"):
            explained = _heat_maps(ctx, errors, folder)
        else:
            explained = _word_scores(ctx, errors)
    except ValueError as error:  # a model these methods cannot read (no spatial backbone, no artifact)
        explained = {"method": "none", "reason": str(error), "items": {}}
    atomic.write_json(folder / EXPLAIN_FILE, explained)
    return f"explained {len(explained['items'])} worst errors ({explained['method']})"


def _heat_maps(ctx: RunContext, errors: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    import numpy as np
    from PIL import Image

    from dlpipe.errors import DataError
    from dlpipe.models.gradcam import grad_cam, overlay

    items: dict[str, Any] = {}
    for number, error in enumerate(errors):
        try:
            pixels = np.asarray(ctx.task.prepare(Path(error["input"]).read_bytes(), ctx.preprocessing), np.float32)
        except (OSError, DataError):
            continue  # the photo moved or cannot be read: its card says so
        target = ctx.class_names.index(error["predicted"])
        heat = grad_cam(ctx.model, pixels[None], [target])[0]
        name = f"gradcam_{number:02d}.png"
        with atomic.replacing_file(folder / name) as tmp:
            Image.fromarray(overlay(pixels, heat)).save(tmp, "PNG")
        items[error["input"]] = {"file": f"{EXPLAIN_DIR}/{name}", "class": error["predicted"]}
    note = ("Grad-CAM of the exported model for the wrong class (multi-label: the worst wrong label), on the "
            "backbone's last feature map: red where the features raised that class's score")
    if ctx.selected_weights is not None:
        note += " (after the refit on all photos; the error was made before it)"
    return {"method": "grad-cam", "note": note, "items": items}


def _word_scores(ctx: RunContext, errors: list[dict[str, Any]]) -> dict[str, Any]:
    import numpy as np

    from dlpipe.errors import DlpipeError
    from dlpipe.models.runtimes import load_runtime

    try:
        runtime = load_runtime(ctx.out_dir)
    except DlpipeError as error:
        raise ValueError(f"no artifact to score words with ({error})") from None
    sentences = [(error, str(error["input"]).split()[:MAX_WORDS]) for error in errors]
    sentences = [(error, words) for error, words in sentences if words]
    variants = [text for error, words in sentences
                for text in [str(error["input"])] + [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]]
    # fixed-size chunks: few traces, and a transformer's .tflite never gets hundreds of sentences at once
    scores = np.concatenate([runtime.predict(runtime.task.stack(variants[start:start + CHUNK]))
                             for start in range(0, len(variants), CHUNK)]) if variants else None
    items: dict[str, Any] = {}
    start = 0
    for error, words in sentences:
        target = runtime.class_names.index(error["predicted"])
        own = scores[start:start + len(words) + 1, target]
        start += len(words) + 1
        items[error["input"]] = {"class": error["predicted"],
                                 "words": [[word, round(float(own[0] - own[i + 1]), 4)] for i, word in enumerate(words)]}
    note = ("Each word's share of the wrong answer: how much its probability falls when the word is left out "
            "(red: the word pushed towards the wrong class; blue: away from it)")
    return {"method": "occlusion", "note": note, "items": items}
