"""`dlpipe` command line: a thin click shell over `dlpipe.pipelines.api`.

TensorFlow is imported inside the commands that need it, so `--help` and
`dlpipe pipelines` answer at once. Errors a user can fix print one line.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import traceback
from typing import Any, Callable

import click

from dlpipe import __version__
from dlpipe.errors import DlpipeError


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


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

    return click.option("--debug", is_flag=True, help="Show the full traceback of an error.")(wrapper)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dlpipe")
def main() -> None:
    """dlpipe: from a folder of images or a file of sentences to a fine-tuned, evaluated, exported model."""


@main.command("run")
@click.argument("pipeline")
@click.option("--data", "data", metavar="PATH", help="Training data; shortcut for --set load.path=PATH.")
@click.option("--out", "out", metavar="DIR", help="Output folder for checkpoints, metrics, plots and models "
              "(default: runs/PIPELINE-TIMESTAMP).")
@click.option("--config", "config_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="YAML file overriding the pipeline's embedded default config (see `dlpipe config PIPELINE`).")
@click.option("--set", "sets", metavar="KEY=VALUE", multiple=True,
              help="Override one config value, e.g. --set train.epochs=3; repeatable; applied after --config.")
@click.option("--resume", is_flag=True, help="Continue a killed or interrupted run in --out from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Delete the run already in --out and start again.")
@_friendly_errors
def run_command(pipeline: str, data: str | None, out: str | None, config_file: str | None, sets: tuple[str, ...],
                resume: bool, overwrite: bool) -> None:
    """Run PIPELINE (see `dlpipe pipelines`) end to end: load, preprocess, augment, train, evaluate, export.

    The resolved config is saved as DIR/config.yaml; metrics.json, report.json,
    training_curves.png, confusion_matrix.png and the exported models land beside it.
    """
    _quiet_tensorflow()
    from dlpipe.pipelines import api

    result = api.run(pipeline, data=data, out=out, config_file=config_file, sets=sets, resume=resume,
                     overwrite=overwrite, echo=click.echo)
    click.echo(f"done: outputs in {result.out_dir}")


@main.command("predict")
@click.argument("inputs", nargs=-1, required=True, metavar="[MODEL] INPUT...")
@click.option("--model", "model_name", metavar="MODEL",
              help="A run folder, a .keras file, an exported SavedModel folder or .tflite file, or a named model "
                   "(efficientnet-lite0-imagenet). "
                   "Without --model, the first argument is the model.")
@click.option("--top-k", default=5, show_default=True, help="How many labels to keep per input.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False),
              help="Write one row per input to this .jsonl or .csv file instead of printing; a killed job "
                   "restarted with the same command continues where it stopped.")
@click.option("--batch-size", default=32, show_default=True, help="Inputs per inference batch.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: in this process; ray: Ray Data actors on a cluster (needs --out and `pip install ray[data]`).")
@click.option("--address", default=None, help="Ray cluster address for --engine ray (default: start a local Ray).")
@_friendly_errors
def predict_command(inputs: tuple[str, ...], model_name: str | None, top_k: int, out_file: str | None,
                    batch_size: int, engine: str, address: str | None) -> None:
    """Classify images (files, folders searched recursively, or .txt lists of paths) or, with a text model,
    the lines of .txt/.tsv/.csv/.jsonl files, and report the top labels."""
    _quiet_tensorflow()
    from dlpipe.serving.batch_job import run_batch_job
    from dlpipe.serving.predictor import ImagePredictor, TextPredictor, expand_inputs, is_text_model

    if model_name is None:
        if len(inputs) < 2:
            raise click.UsageError("give a MODEL and at least one INPUT, or use --model")
        model_name, inputs = inputs[0], inputs[1:]
    if is_text_model(model_name):
        predictor: Any = TextPredictor.load(model_name)
        paths = predictor.add_inputs(inputs)
    else:
        predictor = ImagePredictor.load(model_name)
        paths = expand_inputs(inputs)
    if out_file is None:
        if engine == "ray":
            raise click.UsageError("--engine ray writes its rows to a file: add --out FILE")
        failed = 0
        for row in predictor.predict_files(paths, top_k=top_k, batch_size=batch_size):
            if row.get("error"):
                failed += 1
                click.echo(f"{row['input']}: error: {row['error']}")
            else:
                shown = f"{row['input']} {row['text']!r}" if "text" in row else row["input"]
                click.echo(f"{shown}: " + ", ".join(f"{t['label']} {t['score']:.3f}" for t in row["top"]))
        click.echo(f"{len(paths) - failed} classified, {failed} failed", err=True)
        return

    def progress(done: int, total: int, seconds: float) -> None:
        rate = done / seconds if seconds else 0.0
        click.echo(f"\r  {done}/{total} inputs, {rate:.1f} items/s", nl=False, err=True)

    if engine == "ray":
        from dlpipe.serving.ray_engine import ray_classifier

        kind = "text" if isinstance(predictor, TextPredictor) else "image"
        classify = ray_classifier(model_name, kind, address, top_k, batch_size, getattr(predictor, "texts", None))
    else:
        def classify(todo):
            return predictor.classify_rows(todo, top_k, batch_size)
    summary = run_batch_job(classify, paths, out_file, progress=progress)
    click.echo("", err=True)
    click.echo(f"{summary.succeeded} classified, {summary.failed} failed, {summary.skipped_as_done} already done "
               f"({summary.items_per_second:.1f} items/s); rows in {out_file}", err=True)


@main.command("export")
@click.argument("run_dir")
@click.option("--format", "fmt", type=click.Choice(["keras", "savedmodel", "tflite"]), default="tflite", show_default=True,
              help="savedmodel: for TF Serving/GPU servers, takes encoded image bytes or raw strings; tflite: for "
                   "phones and boards, takes pixels or token ids (the vocabulary is shipped with it).")
@click.option("--quantize", type=click.Choice(["none", "float16", "dynamic", "int8"]), default="none", show_default=True,
              help="TFLite weights: float32 (none), float16, dynamic-range int8, or full int8 with uint8 input/output "
                   "(image models only, calibrated on the run's training images).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Folder to write into (default: RUN_DIR).")
@_friendly_errors
def export_command(run_dir: str, fmt: str, quantize: str, out_dir: str | None) -> None:
    """Export a finished run's model; the new file replaces an old one only once it is complete."""
    _quiet_tensorflow()
    from dlpipe.pipelines.exporting import export_run

    if quantize != "none" and fmt != "tflite":
        raise click.UsageError("--quantize applies to --format tflite")
    name = fmt if fmt != "tflite" or quantize == "none" else f"tflite-{quantize}"
    path = export_run(run_dir, name, out_dir)
    size = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
    click.echo(f"wrote {path} ({size / 1e6:.1f} MB) with labels.txt beside it")


@main.command("evaluate")
@click.argument("artifact")
@click.option("--data", "data", required=True, metavar="PATH",
              help="Image model: a folder with one sub-folder per class. Text model: a text<TAB>label file (or .csv).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Also write the metrics to this JSON file.")
@_friendly_errors
def evaluate_command(artifact: str, data: str, out_file: str | None) -> None:
    """Measure ARTIFACT (run folder, .keras, SavedModel folder or .tflite) on labelled images or texts."""
    _quiet_tensorflow()
    from dlpipe import atomic
    from dlpipe.pipelines.evaluation import evaluate_artifact

    report = evaluate_artifact(artifact, data)
    click.echo(f"accuracy {report['accuracy']:.4f} on {report['count']} inputs, macro F1 {report['macro_f1']:.4f}")
    for name, scores in report["per_class"].items():
        click.echo(f"  {name}: precision {scores['precision']:.3f} recall {scores['recall']:.3f} f1 {scores['f1']:.3f}")
    if out_file:
        atomic.write_json(out_file, report)


@main.command("serve")
@click.argument("model_dir")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback unless you need others to reach it.")
@click.option("--port", default=8501, show_default=True, help="TCP port (TF Serving's REST port by default).")
@click.option("--max-batch-size", default=32, show_default=True, help="Most inputs run in one model call (1 turns batching off).")
@click.option("--max-wait-ms", default=5.0, show_default=True, help="How long a batch waits to fill.")
@click.option("--max-queue", default=256, show_default=True, help="Requests allowed to wait; more get 503.")
@click.option("--max-body-mb", default=10.0, show_default=True, help="Largest request body; larger gets 413.")
@click.option("--token-env", default="DLPIPE_TOKEN", show_default=True,
              help="Environment variable holding a bearer token; when set, requests without it get 401.")
@click.option("--watch-seconds", default=5.0, show_default=True, help="How often to look for new model versions (0: never).")
@_friendly_errors
def serve_command(model_dir: str, host: str, port: int, max_batch_size: int, max_wait_ms: float, max_queue: int,
                  max_body_mb: float, token_env: str, watch_seconds: float) -> None:
    """Serve the model(s) in MODEL_DIR (a run folder, or ROOT/NAME/VERSION/) over a TF-Serving-style REST API."""
    _quiet_tensorflow()
    import threading

    import uvicorn

    from dlpipe.serving.repository import ModelRepository
    from dlpipe.serving.server import ServerSettings, create_app

    repository = ModelRepository(model_dir)
    settings = ServerSettings(max_batch_size, max_wait_ms, max_queue, int(max_body_mb * 1024 * 1024),
                              os.environ.get(token_env) or None)
    stop = threading.Event()
    if watch_seconds > 0:
        repository.watch(watch_seconds, stop)
    click.echo(f"serving {', '.join(repository.names())} on http://{host}:{port}/v1/models/NAME:predict", err=True)
    try:
        uvicorn.run(create_app(repository, settings), host=host, port=port, log_level="warning")
    finally:
        stop.set()


@main.command("pipelines")
def pipelines_command() -> None:
    """List the pipelines and their stages."""
    from dlpipe.pipelines.catalog import PIPELINES

    for name in PIPELINES.names():
        spec = PIPELINES.get(name)
        click.echo(f"{name}: {spec.description}")
        click.echo(f"  stages: {' -> '.join(stage.name for stage in spec.stages)}")


@main.command("config")
@click.argument("pipeline")
@_friendly_errors
def config_command(pipeline: str) -> None:
    """Print PIPELINE's default config with every option explained (a starting point for --config)."""
    from dlpipe.pipelines.api import resolve_config
    from dlpipe.pipelines.catalog import PIPELINES

    spec = PIPELINES.get(pipeline, key="pipeline")
    config = resolve_config(pipeline)
    click.echo(f"pipeline: {pipeline}\nseed: {config.seed}\nstages: [{', '.join(config.stages)}]")
    for name, section in config.sections.items():
        doc = inspect.getdoc(sys.modules[spec.stage_class(name).__module__]) or ""
        click.echo(f"\n{name}:  # {doc.splitlines()[0] if doc else ''}".rstrip())
        for item in dataclasses.fields(section):
            value = getattr(section, item.name)
            click.echo(f"  {item.name}: {_yaml_value(value)}  # {item.metadata.get('help', '')}")


@main.command("backbones")
def backbones_command() -> None:
    """List the image backbones and what they need."""
    _quiet_tensorflow()
    from dlpipe.models.backbones import BACKBONES

    for name in BACKBONES.names():
        spec = BACKBONES.get(name)
        click.echo(f"{name}: {spec.description} (input {spec.input_size}px, normalisation {spec.normalization})")


def _yaml_value(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


if __name__ == "__main__":
    main()
