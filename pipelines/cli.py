"""`dlpipe` command line: a thin click shell over `dlpipe.pipelines.api`, the runtime and the server.

TensorFlow is imported inside the commands that need it, so `--help` and
`dlpipe pipelines` answer at once; its C++ logging is silenced before any
import (`--verbose` shows it). Errors a user can fix print one line.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from dlpipe import __version__
from dlpipe.errors import DlpipeError
from dlpipe.quiet import VERBOSE_ENV, quiet_tensorflow

if "--verbose" in sys.argv[1:]:  # read before TensorFlow is first imported, which is when it reads its log level
    os.environ[VERBOSE_ENV] = "1"
quiet_tensorflow()


def _friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one line on stderr and an exit code; --debug shows the traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, debug: bool = False, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DlpipeError as error:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; checkpoints are kept: rerun with --resume to continue", err=True)
            sys.exit(130)
        except Exception as error:  # noqa: BLE001 - the last line of defence before a traceback
            if debug:
                traceback.print_exc()
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            click.echo(f"internal error: {type(error).__name__}: {first} (rerun with --debug for details)", err=True)
            sys.exit(1)

    wrapper = click.option("--debug", is_flag=True, help="Show the full traceback of an error.")(wrapper)
    return click.option("--verbose", is_flag=True, expose_value=False,
                        help="Show TensorFlow's own logs and the TFLite converter's output.")(wrapper)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlpipe")
def main() -> None:
    """dlpipe: from a folder of images or a file of sentences to a fine-tuned, evaluated, exported model."""


def _config_options(out_help: str, data_help: str = "Training data; shortcut for --set load.path=PATH.",
                    set_help: str = "Override one config value, e.g. --set train.epochs=3; repeatable; applied after "
                                    "--config.", required: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--data, --out, --config and --set: how `run`, `lr-find` and `tune` each take a pipeline's config."""
    options = [
        click.option("--data", "data", required=required, metavar="PATH", help=data_help),
        click.option("--out", "out", required=required, metavar="DIR", help=out_help),
        click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
                     help="YAML file overriding the pipeline's embedded default config (see `dlpipe config PIPELINE`)."),
        click.option("--set", "sets", metavar="KEY=VALUE", multiple=True, help=set_help),
    ]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@main.command("run")
@click.argument("pipeline")
@_config_options("Output folder for checkpoints, metrics, plots and models (default: runs/PIPELINE-TIMESTAMP).")
@click.option("--resume", is_flag=True, help="Continue a killed or interrupted run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Delete the run already in --out and start again.")
@_friendly_errors
def run_command(pipeline: str, data: str | None, out: str | None, config_file: str | None, sets: tuple[str, ...],
                resume: bool, overwrite: bool) -> None:
    """Run PIPELINE (see `dlpipe pipelines`) end to end: load, preprocess, augment, train, evaluate, export.

    The resolved config is saved as DIR/config.yaml; metrics.json, report.json,
    training_curves.png, confusion_matrix.png and the exported models land beside it.
    """
    from dlpipe.pipelines import api

    result = api.run(pipeline, data=data, out=out, config_file=config_file, sets=sets, resume=resume,
                     overwrite=overwrite, echo=click.echo)
    click.echo(f"done: outputs in {result.out_dir}")


@main.command("lr-find")
@click.argument("pipeline")
@_config_options("Folder for lr_find.png, lr_find.json and config.yaml (default: runs/lr-find-PIPELINE-TIMESTAMP).",
                 set_help="Override one config value, e.g. --set train.lr_find_steps=100; repeatable.")
@_friendly_errors
def lr_find_command(pipeline: str, data: str | None, out: str | None, config_file: str | None,
                    sets: tuple[str, ...]) -> None:
    """Find a learning rate for PIPELINE: an exponential sweep over train.lr_find_steps steps (fastai's lr_find).

    Writes the loss-vs-rate plot (lr_find.png), the sweep (lr_find.json) and the resolved config with the chosen
    rate (config.yaml, for `dlpipe run --config`). `--set train.learning_rate=auto` does the same inside a run.
    """
    from dlpipe.pipelines import api

    result = api.lr_find(pipeline, data=data, out=out, config_file=config_file, sets=sets, echo=click.echo)
    click.echo(f"learning rate: {result['chosen']:.3g} (steepest descent {result['steepest']:.3g}, "
               f"loss minimum {result['minimum']:.3g}); plot and config.yaml in {out or 'runs/'}")


@main.command("tune")
@click.argument("pipeline")
@_config_options("Study folder: study.db (resumable), trials/, trials.png, best.yaml.",
                 data_help="Training data (one folder of class sub-folders).",
                 set_help="Fixed overrides for every trial.", required=True)
@click.option("--budget-minutes", type=float, required=True, help="Stop starting trials after this many minutes.")
@click.option("--folds", default=3, show_default=True, help="Cross-validation folds per trial.")
@click.option("--max-trials", type=int, default=None, help="Stop after this many finished trials.")
@click.option("--space", "space_items", metavar="KEY=a,b|LOW..HIGH", multiple=True,
              help="Search this instead of the built-in space, e.g. --space train.probe_c=0.01..10; repeatable.")
@_friendly_errors
def tune_command(pipeline: str, data: str, out: str, config_file: str | None, sets: tuple[str, ...],
                 budget_minutes: float, folds: int, max_trials: int | None, space_items: tuple[str, ...]) -> None:
    """Search hyperparameters of PIPELINE within a time budget, each trial scored by K-fold cross-validation.

    Optuna's TPE sampler; the study is stored in DIR/study.db, so the same command resumes after a kill.
    One line per finished trial; DIR/best.yaml repeats the best with `dlpipe run PIPELINE --config DIR/best.yaml`.
    """
    from dlpipe.pipelines.training.tuning import parse_space, tune

    space = parse_space(space_items) if space_items else None
    result = tune(pipeline, data, out, budget_minutes, folds, config_file, sets, space, max_trials, echo=click.echo)
    click.echo(f"best: {folds}-fold CV accuracy {result['best_value']:.3f} after {result['trials']} trials; "
               f"config: {result['best_config']} (dlpipe run {pipeline} --config {result['best_config']})")


ARTIFACT_HELP = ("Which artifact of a run or export folder runs: auto (the fastest whose parity with the Keras model, "
                 "measured at export, is within 1 point), keras, savedmodel, float32, float16, dynamic or int8.")


@main.command("predict")
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
                   "folder: a mask PNG and an overlay per image, rows in FOLDER/masks.jsonl.")
@click.option("--batch-size", default=32, show_default=True, help="Inputs per inference batch.")
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
@_friendly_errors
def predict_command(inputs: tuple[str, ...], model_name: str | None, artifact: str, top_k: int, out_file: str | None,
                    batch_size: int, engine: str, address: str | None, min_score: float | None,
                    nms_iou: float | None, max_boxes: int | None, draw_dir: str | None) -> None:
    """Run a model on inputs: images (files, folders searched recursively, or .txt lists of paths) or, with a
    text model, the lines of .txt/.tsv/.csv/.jsonl files, and report the top labels; a detection model
    (coco-detector) reports labelled boxes in each photo's own pixels (x1, y1, x2, y2)."""
    from dlpipe.models.runtimes import load_runtime
    from dlpipe.serving.batch_job import result_rows, run_batch_job

    if model_name is None:
        if len(inputs) < 2:
            raise click.UsageError("give a MODEL and at least one INPUT, or use --model")
        model_name, inputs = inputs[0], inputs[1:]
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


@main.command("export")
@click.argument("run_dir", metavar="RUN_DIR|NAMED_MODEL")
@click.option("--format", "fmt", type=click.Choice(["keras", "savedmodel", "tflite", "web"]), default="tflite",
              show_default=True,
              help="web: a static folder that runs the float32 .tflite in the browser with MediaPipe Tasks; "
                   "savedmodel: for TF Serving/GPU servers, takes encoded image bytes or raw strings; tflite: for "
                   "phones and boards, takes pixels or token ids (the vocabulary is shipped with it).")
@click.option("--quantize", type=click.Choice(["none", "float16", "dynamic", "int8"]), default="none", show_default=True,
              help="TFLite weights: float32 (none), float16, dynamic-range int8, or full int8 with uint8 input/output "
                   "(image models only, calibrated on the run's training images).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder to write into (default: RUN_DIR; required for a named model).")
@click.option("--sample", "samples", multiple=True, metavar="PATH",
              help="Named models (coco-detector): inputs (files or folders) to check the export against the model "
                   "with (the parity record) and to calibrate full-integer files on; repeatable.")
@_friendly_errors
def export_command(run_dir: str, fmt: str, quantize: str, out_dir: str | None, samples: tuple[str, ...]) -> None:
    """Export a finished run's model, or a named model (coco-detector) with --out; the new file replaces an old one
    only once it is complete."""
    from dlpipe.models import artifacts
    from dlpipe.models.pretrained import NAMED_MODELS
    from dlpipe.pipelines.exporting import export_named, export_run

    if quantize != "none" and fmt != "tflite":
        raise click.UsageError("--quantize applies to --format tflite")
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
    check = (f"; agrees with the Keras model on {parity['top1_agreement']:.1%} of {checked}" if parity
             else "; no parity check (the run's data is not readable, or no --sample)")
    click.echo(f"wrote {path} ({size / 1e6:.1f} MB) with its labels and preprocessing{check}")


@main.command("evaluate")
@click.argument("artifact")
@click.option("--data", "data", required=True, metavar="PATH",
              help="Image model: a folder with one sub-folder per class. Text model: a text<TAB>label file (or .csv). "
                   "Segmentation model: a folder with images/ and masks/. Detection model: a COCO annotations JSON "
                   "(or its folder).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write the metrics to this JSON file.")
@click.option("--artifact", "choice", default="auto", show_default=True, help=ARTIFACT_HELP)
@_friendly_errors
def evaluate_command(artifact: str, data: str, out_file: str | None, choice: str) -> None:
    """Measure ARTIFACT (run folder, .keras, SavedModel folder, .tflite or a named model such as coco-detector) on
    labelled images, texts, masks or COCO boxes."""
    from dlpipe import atomic
    from dlpipe.pipelines.evaluation import evaluate_artifact

    report = evaluate_artifact(artifact, data, choice=choice)
    head, *rest = report["summary"]
    click.echo(f"{report['artifact']} ({report['artifact_format']}): {head}")
    for line in rest:
        click.echo(line)
    if out_file:
        atomic.write_json(out_file, report)


@main.command("serve")
@click.argument("model_dir", metavar="MODEL")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback unless you need others to reach it.")
@click.option("--port", default=8501, show_default=True, help="TCP port (TF Serving's REST port by default).")
@click.option("--max-batch-size", default=8, show_default=True, help="Most inputs run in one model call (1 turns batching off).")
@click.option("--max-wait-ms", default=0.0, show_default=True,
              help="How long a batch waits to fill; 0 batches only requests already waiting (TF Serving's CPU advice).")
@click.option("--batch-threads", default=0, show_default=True,
              help="Model calls run at once per model, each on its own LiteRT interpreter (0: one per core).")
@click.option("--decode-threads", default=0, show_default=True, help="Threads decoding request images (0: one per core).")
@click.option("--max-queue", default=256, show_default=True, help="Requests allowed to wait; more get 503.")
@click.option("--max-body-mb", default=10.0, show_default=True, help="Largest request body; larger gets 413.")
@click.option("--max-instances", default=256, show_default=True, help="Most instances in one request; more gets 413.")
@click.option("--token-env", default="DLPIPE_TOKEN", show_default=True,
              help="Environment variable holding a bearer token; when set, requests without it get 401.")
@click.option("--watch-seconds", default=5.0, show_default=True, help="How often to look for new model versions (0: never).")
@click.option("--artifact", default="auto", show_default=True, help=ARTIFACT_HELP)
@_friendly_errors
def serve_command(model_dir: str, host: str, port: int, max_batch_size: int, max_wait_ms: float, batch_threads: int,
                  decode_threads: int, max_queue: int, max_body_mb: float, max_instances: int, token_env: str,
                  watch_seconds: float, artifact: str) -> None:
    """Serve the model(s) in MODEL_DIR (a run or export folder, an artifact file, ROOT/NAME/VERSION/, or a named
    model such as coco-detector) over a TF-Serving-style REST API. A model folder's serving.json
    (max_batch_size, max_wait_ms, num_batch_threads) overrides the batching flags for that model."""
    import threading

    import uvicorn

    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import ServerSettings, create_app

    repository = ModelRepository(model_dir, artifact)
    for model in repository.models():
        click.echo(f"{model.name}: {model.runtime.describe()}, chosen: {model.runtime.chosen_because}", err=True)
    settings = ServerSettings(max_batch_size, max_wait_ms, batch_threads, max_queue, int(max_body_mb * 1024 * 1024),
                              os.environ.get(token_env) or None, max_instances=max_instances,
                              decode_threads=decode_threads)
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
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        stop.set()


@main.command("generate")
@click.argument("run_dir")
@click.option("--n", "count", default=64, show_default=True, help="How many images to generate.")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="The PNG grid to write.")
@click.option("--columns", default=8, show_default=True, help="Images per row of the grid.")
@click.option("--seed", default=0, show_default=True, help="Seed of the latent draws (same seed, same images).")
@_friendly_errors
def generate_command(run_dir: str, count: int, out_file: str, columns: int, seed: int) -> None:
    """Sample a trained `gan` run's generator (RUN_DIR/generator.keras) into a PNG grid."""
    from pathlib import Path

    from dlpipe.models import artifacts
    from dlpipe.models.dcgan import generate_images, save_sample_grid

    generator = artifacts.load_keras(Path(run_dir) / "generator.keras")
    path = save_sample_grid(generate_images(generator, count, seed), out_file, count=count, columns=columns)
    click.echo(f"wrote {path}: {count} generated images")


@main.command("pipelines")
def pipelines_command() -> None:
    """List the pipelines, their tasks and their stages."""
    from dlpipe.pipelines.catalog import pipelines

    for name in pipelines().names():
        spec = pipelines().get(name)
        click.echo(f"{name} (task {spec.task}): {spec.description}")
        click.echo(f"  stages: {' -> '.join(spec.roles)}")


@main.command("config")
@click.argument("pipeline")
@_friendly_errors
def config_command(pipeline: str) -> None:
    """Print PIPELINE's default config, each stage's help and every option explained (a starting point for --config)."""
    from dlpipe.pipelines.api import resolve_config
    from dlpipe.pipelines.catalog import get_pipeline

    spec = get_pipeline(pipeline)
    config = resolve_config(pipeline)
    click.echo(f"# {spec.description}")
    click.echo(f"pipeline: {pipeline}\ntask: {spec.task}\nseed: {config.seed}\nstages: [{', '.join(config.stages)}]")
    for name, section in config.sections.items():
        stage = spec.stage_class(name)
        click.echo(f"\n# {name}: " + _comment(inspect.getdoc(stage) or ""))
        click.echo(f"{name}:  # {(inspect.getdoc(stage.config_cls) or '').splitlines()[0]}".rstrip(" #"))
        for item in dataclasses.fields(section):
            value = getattr(section, item.name)
            click.echo(f"  {item.name}: {_yaml_value(value)}  # {item.metadata.get('help', '')}")
        for line in stage.option_notes(config.sections):
            click.echo(f"  # {line}")


def _comment(text: str) -> str:
    return "\n#   ".join(line for line in text.splitlines() if line.strip())


@main.command("backbones")
def backbones_command() -> None:
    """List the image backbones and what they need."""
    from dlpipe.models.backbones import BACKBONES

    for name in BACKBONES.names():
        spec = BACKBONES.get(name)
        click.echo(f"{name}: {spec.description} (input {spec.input_size}px, normalisation {spec.normalization})")


def _yaml_value(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


if __name__ == "__main__":
    main()
