"""`dlpipe predict`, `export`, `evaluate`, `serve` and `generate`: the commands that use a trained model.

Registered on the `dlpipe` group by `dlpipe.pipelines.cli`; like every command, they import TensorFlow only
when they run.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from dlpipe.pipelines.cli_common import ARTIFACT_HELP, check_writable, friendly_errors
from dlpipe.serving.batching_defaults import (
    BATCH_JOB_BATCH_SIZE, BATCH_THREADS, SERVER_MAX_BATCH_SIZE, SERVER_MAX_QUEUE, SERVER_MAX_WAIT_MS,
)


@click.command("predict")
@click.argument("inputs", nargs=-1, required=True, metavar="[MODEL] INPUT...")
@click.option("--model", "model_name", metavar="MODEL",
              help="A run folder, a .keras file, an exported SavedModel folder or .tflite file, or a named model "
                   "(efficientnet-lite0-imagenet, coco-detector for COCO boxes, person-segmenter for person masks). "
                   "Without --model, the first argument is the model.")
@click.option("--artifact", default="auto", show_default=True, help=ARTIFACT_HELP)
@click.option("--top-k", default=5, show_default=True,
              help="How many labels to keep per input (classifiers; detection models take --max-boxes).")
@click.option("--out", "out_file", type=click.Path(),
              help="Write one row per input to this .jsonl or .csv file instead of printing; a killed job "
                   "restarted with the same command continues where it stopped. A segmentation model takes a "
                   "folder: a mask PNG and an overlay per image, rows in FOLDER/masks.jsonl; a gan model a folder "
                   "of generated images, FOLDER/seed_N.png, rows in FOLDER/images.jsonl.")
@click.option("--batch-size", default=BATCH_JOB_BATCH_SIZE, show_default=True, help="Inputs per inference batch.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: in this process; ray: Ray Data actors on a cluster (needs --out and `pip install ray[data]`).")
@click.option("--address", default=None, help="Ray cluster address for --engine ray (default: start a local Ray).")
@click.option("--min-score", type=float, default=None,
              help="Detection models: keep boxes scoring at least this (default 0.3).")
@click.option("--nms-iou", type=float, default=None,
              help="Detection models: drop a box overlapping a better one of its label by more than this IoU "
                   "(default 0.5; 1 keeps all).")
@click.option("--max-boxes", type=int, default=None, help="Detection models: most boxes kept per image (default 100).")
@click.option("--draw", "draw_dir", type=click.Path(file_okay=False), default=None,
              help="Detection models: also write each photo with its boxes and labels drawn into this folder.")
@friendly_errors
def predict_command(inputs: tuple[str, ...], model_name: str | None, artifact: str, top_k: int, out_file: str | None,
                    batch_size: int, engine: str, address: str | None, min_score: float | None,
                    nms_iou: float | None, max_boxes: int | None, draw_dir: str | None) -> None:
    """Run a model on inputs: images (files, folders searched recursively, or .txt lists of paths) or, with a
    text model, the lines of .txt/.tsv/.csv/.jsonl files, and report the top labels; a detection model
    (coco-detector) reports labelled boxes in each photo's own pixels (x1, y1, x2, y2); a gan model takes seeds
    (0 1 2, a range 0-63, or a .txt file of seeds) and generates one image per seed."""
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.serving.batch_job import result_rows, run_batch_job

    if model_name is None:
        if len(inputs) < 2:
            raise click.UsageError("give a MODEL and at least one INPUT, or use --model")
        model_name, inputs = inputs[0], inputs[1:]
    check_writable(out_file)
    check_writable(draw_dir)
    runtime = load_runtime(model_name, artifact)
    runtime.task = runtime.task.with_options(min_score=min_score, nms_iou=nms_iou, max_boxes=max_boxes)
    if engine == "ray" and (draw_dir or min_score is not None or nms_iou is not None or max_boxes is not None):
        raise click.UsageError("--draw, --min-score, --nms-iou and --max-boxes run with --engine local")
    click.echo(f"model: {runtime.describe()}" + (f", chosen: {runtime.chosen_because}"
                                                  if runtime.chosen_because != "given" else ""), err=True)
    todo = runtime.task.collect_inputs(inputs)
    # the task's writer of per-input files (a segmenter's mask PNGs with --out, a detector's drawings with --draw)
    writer = runtime.task.output_writer(Path(out_file) if out_file else None, todo, Path(draw_dir) if draw_dir else None)

    def rows_of(keys):
        return result_rows(runtime, todo.subset(keys), top_k, batch_size, writer)
    if out_file is None:
        if engine == "ray":
            raise click.UsageError("--engine ray writes its rows to a file: add --out FILE")
        failed = 0
        for rows in rows_of(todo.ids):
            for row in rows:
                if row.get("error"):
                    failed += 1
                    click.echo(f"{row['input']}: error: {row['error']}")
                else:
                    shown = f"{row['input']} {row['text']!r}" if "text" in row else row["input"]
                    click.echo(f"{shown}: " + runtime.task.console_text(row))
        click.echo(f"{len(todo.ids) - failed} classified, {failed} failed", err=True)
        return

    def progress(done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0.0
        eta = (total - done) / rate if rate else 0.0
        click.echo(f"\r  {done}/{total} inputs, {rate:.1f} items/s, ETA {eta:.0f} s", nl=False, err=True)

    rows_file = writer.rows_file if writer is not None else out_file
    if engine == "ray":
        if writer is not None:
            raise click.UsageError("--engine ray writes rows only; this model also writes files per input: "
                                   "use --engine local")
        from dlpipe.serving.ray_engine import ray_classifier

        classify = ray_classifier(model_name, artifact, todo, address, top_k, batch_size)
    else:
        classify = rows_of
    summary = run_batch_job(classify, todo.ids, rows_file, progress=progress)
    click.echo("", err=True)
    click.echo(f"{summary.succeeded} classified, {summary.failed} failed, {summary.skipped_as_done} already done "
               f"({summary.items_per_second:.1f} items/s); rows in {rows_file}", err=True)


@click.command("export")
@click.argument("run_dir", metavar="RUN_DIR|NAMED_MODEL")
@click.option("--format", "fmt", type=click.Choice(["keras", "savedmodel", "tflite", "web", "onnx"]),
              default="tflite", show_default=True,
              help="onnx: for onnxruntime, takes what the float32 .tflite takes (image, segmentation and text models); "
                   "web: a static folder that runs the float32 .tflite in the browser with MediaPipe Tasks; "
                   "savedmodel: for TF Serving/GPU servers, takes encoded image bytes or raw strings; tflite: for "
                   "phones and boards, takes pixels or token ids (the vocabulary is shipped with it).")
@click.option("--quantize", type=click.Choice(["none", "float16", "dynamic", "int8", "auto"]), default="none",
              show_default=True,
              help="TFLite weights: float32 (none), float16, dynamic-range int8, or int8 calibrated on the run's "
                   "training images (image, multi-label, segmentation: full-integer, uint8 in and out; detectors: "
                   "the network int8 but the heat-map logits' last convolution, the decoding float, float in and out; "
                   "train.int8_epochs prepares a detector for it); auto: build them all (and int8 with "
                   "its fragile layers in float), score each on held-out data, ship the smallest within --max-drop.")
@click.option("--max-drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="--quantize auto: points of accuracy (mAP, mean IoU) a candidate may lose against float32.")
@click.option("--eval-data", metavar="PATH", default=None,
              help="--quantize auto: labelled data the model never trained on, as `dlpipe evaluate --data` takes "
                   "(default: the run's validation split, refused when the model was refitted on it).")
@click.option("--prefer", type=click.Choice(["size", "speed"]), default="size", show_default=True,
              help="--quantize auto: among candidates within the budget, the smallest file or the fastest.")
@click.option("--keep-candidates", metavar="DIR", default=None,
              help="--quantize auto: keep every candidate file in DIR/NAME/ to inspect (default: only the chosen).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder to write into (default: RUN_DIR; required for a named model).")
@click.option("--sample", "samples", multiple=True, metavar="PATH",
              help="Named models (coco-detector): inputs (files or folders) to check the export against the model "
                   "with (the parity record) and to calibrate full-integer files on; repeatable.")
@friendly_errors
def export_command(run_dir: str, fmt: str, quantize: str, out_dir: str | None, samples: tuple[str, ...],
                   max_drop: float, eval_data: str | None, prefer: str, keep_candidates: str | None) -> None:
    """Export a finished run's model, or a named model (coco-detector) with --out; the new file replaces an old one
    only once it is complete."""
    from dlpipe.models import artifacts
    from dlpipe.models.pretrained import NAMED_MODELS
    from dlpipe.pipelines.exporting import export_named, export_run

    if quantize != "none" and fmt != "tflite":
        raise click.UsageError("--quantize applies to --format tflite")
    if quantize == "auto":
        from dlpipe.pipelines.quantize_auto import export_auto

        if not Path(run_dir).exists() and run_dir in NAMED_MODELS or samples:
            raise click.UsageError("--quantize auto takes a run folder (named models: choose --quantize yourself)")
        export_auto(run_dir, out_dir, max_drop, eval_data, prefer, echo=click.echo, keep_candidates=keep_candidates)
        return
    name = fmt if fmt != "tflite" or quantize == "none" else f"tflite-{quantize}"
    if not Path(run_dir).exists() and run_dir in NAMED_MODELS:
        path = export_named(run_dir, name, out_dir, samples)
    elif samples:
        raise click.UsageError("--sample is for named models; a run is checked on its own validation data")
    else:
        path = export_run(run_dir, name, out_dir)
    size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
    parity = (artifacts.read_record(path) or {}).get("parity")
    checked = (f"{parity['boxes']} boxes of {parity['count']} sample photos" if parity and "boxes" in parity
               else f"{parity['count']} validation inputs" if parity else "")
    if parity and parity.get("top1_agreement") is not None:
        check = f"; agrees with the Keras model on {parity['top1_agreement']:.1%} of {checked}"
    elif parity:
        check = f"; unchecked: nothing to compare on {checked} (parity null)"
    else:
        check = "; no parity check (the run's data is not readable, or no --sample)"
    click.echo(f"wrote {path} ({size / 1e6:.1f} MB) with its labels and preprocessing{check}")
    if name == "tflite-int8" and Path(run_dir).is_dir():
        from dlpipe.pipelines.detect.train import int8_training_note

        note = int8_training_note(run_dir)
        if note:
            click.echo(note)


@click.command("evaluate")
@click.argument("artifact")
@click.option("--data", "data", required=True, metavar="PATH",
              help="Image model: a folder with one sub-folder per class. Text model: a text<TAB>label file (or .csv). "
                   "Segmentation model: a folder with images/ and masks/. Detection model: a COCO annotations JSON "
                   "(or its folder).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write the metrics to this JSON file.")
@click.option("--artifact", "choice", default="auto", show_default=True, help=ARTIFACT_HELP)
@friendly_errors
def evaluate_command(artifact: str, data: str, out_file: str | None, choice: str) -> None:
    """Measure ARTIFACT (run folder, .keras, SavedModel folder, .tflite or a named model such as coco-detector) on
    labelled images, texts, masks or COCO boxes."""
    from dlpipe import atomic
    from dlpipe.pipelines.evaluation import evaluate_artifact

    check_writable(out_file)
    report = evaluate_artifact(artifact, data, choice=choice)
    head, *rest = report["summary"]
    click.echo(f"{report['artifact']} ({report['artifact_format']}): {head}")
    for line in rest:
        click.echo(line)
    if out_file:
        atomic.write_json(out_file, report)


@click.command("serve")
@click.argument("model_dir", metavar="MODEL")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback unless you need others to reach it.")
@click.option("--port", default=8501, show_default=True, help="TCP port (TF Serving's REST port by default).")
@click.option("--max-batch-size", default=SERVER_MAX_BATCH_SIZE, show_default=True, help="Most inputs run in one model call (1 turns batching off).")
@click.option("--max-wait-ms", default=SERVER_MAX_WAIT_MS, show_default=True,
              help="How long a batch waits to fill; 0 batches only requests already waiting (TF Serving's CPU advice).")
@click.option("--batch-threads", default=BATCH_THREADS, show_default=True,
              help="Model calls run at once per model, each on its own LiteRT interpreter (0: one per core).")
@click.option("--decode-threads", default=0, show_default=True, help="Threads decoding request images (0: one per core).")
@click.option("--max-queue", default=SERVER_MAX_QUEUE, show_default=True, help="Requests allowed to wait; more get 503.")
@click.option("--max-body-mb", default=10.0, show_default=True, help="Largest request body; larger gets 413.")
@click.option("--max-instances", default=256, show_default=True, help="Most instances in one request; more gets 413.")
@click.option("--max-header-kb", default=16.0, show_default=True, type=click.FloatRange(min=1),
              help="Largest request line plus headers; larger gets 431 (414 for the line alone), read no further.")
@click.option("--max-headers", default=100, show_default=True, type=click.IntRange(min=1),
              help="Most headers in one request; more gets 431.")
@click.option("--header-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a client has to send its request line and headers; slower gets 408 and is disconnected.")
@click.option("--token-env", default="DLPIPE_TOKEN", show_default=True,
              help="Environment variable holding a bearer token; when set, requests without it get 401.")
@click.option("--watch-seconds", default=5.0, show_default=True, help="How often to look for new model versions (0: never).")
@click.option("--artifact", default="auto", show_default=True, help=ARTIFACT_HELP)
@friendly_errors
def serve_command(model_dir: str, host: str, port: int, max_batch_size: int, max_wait_ms: float, batch_threads: int,
                  decode_threads: int, max_queue: int, max_body_mb: float, max_instances: int, max_header_kb: float,
                  max_headers: int, header_timeout: float, token_env: str, watch_seconds: float, artifact: str) -> None:
    """Serve the model(s) in MODEL_DIR (a run or export folder, an artifact file, ROOT/NAME/VERSION/, or a named
    model such as coco-detector) over a TF-Serving-style REST API. A model folder's serving.json
    (max_batch_size, max_wait_ms, num_batch_threads) overrides the batching flags for that model."""
    import threading

    import uvicorn

    from dlpipe.serving.http_limits import server_config
    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import ServerSettings, create_app

    repository = ModelRepository(model_dir, artifact)
    for model in repository.models():
        click.echo(f"{model.name}: {model.runtime.describe()}, chosen: {model.runtime.chosen_because}", err=True)
    settings = ServerSettings(max_batch_size, max_wait_ms, batch_threads, max_queue, int(max_body_mb * 1024 * 1024),
                              os.environ.get(token_env) or None, max_instances=max_instances,
                              decode_threads=decode_threads, max_header_bytes=int(max_header_kb * 1024),
                              max_headers=max_headers, header_timeout_s=header_timeout)
    stop = threading.Event()
    if watch_seconds > 0:
        repository.watch(watch_seconds, stop)
    app = create_app(repository, settings)
    for model in repository.models():
        click.echo(f"{model.name}: batching {model.policy}", err=True)
    click.echo(f"serving {', '.join(repository.names())} on http://{host}:{port}/v1/models/NAME:predict", err=True)
    import gc

    # TensorFlow leaves hundreds of thousands of long-lived objects; freezing them keeps every later full
    # collection from scanning them, which otherwise stalled a request for up to ~0.4 s now and then
    gc.collect()
    gc.freeze()
    try:
        uvicorn.Server(server_config(app, settings, host, port)).run()
    finally:
        stop.set()


@click.command("generate")
@click.argument("run_dir")
@click.option("--n", "count", default=64, show_default=True, help="How many images to generate.")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="The PNG grid to write.")
@click.option("--columns", default=8, show_default=True, help="Images per row of the grid.")
@click.option("--seed", default=0, show_default=True,
              help="The first image's seed: the grid holds seeds SEED .. SEED+N-1, as `dlpipe predict RUN SEED ...`.")
@click.option("--artifact", default="auto", show_default=True, help=ARTIFACT_HELP)
@friendly_errors
def generate_command(run_dir: str, count: int, out_file: str, columns: int, seed: int, artifact: str) -> None:
    """Sample a trained `gan` run's generator (any of its artifacts) into a PNG grid."""
    from dlpipe.errors import DataError
    from dlpipe.models.dcgan import save_sample_grid
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.models.tasks.gan import to_pixels

    if count < 1 or seed < 0:
        raise click.UsageError("--n must be at least 1 and --seed at least 0")
    check_writable(out_file)
    runtime = load_runtime(run_dir, artifact)
    task, prep = runtime.task, runtime.preprocessing
    if task.name != "gan":
        raise DataError(run_dir, f"is a {task.name} model; dlpipe generate samples the generator of a `dlpipe run gan`")
    images = to_pixels(runtime.predict(task.stack([task.prepare(seed + i, prep) for i in range(count)])))
    path = save_sample_grid(images, out_file, count=count, columns=columns)
    click.echo(f"wrote {path}: {count} generated images (seeds {seed}..{seed + count - 1}, {runtime.format})")
