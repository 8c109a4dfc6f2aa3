"""`dlpipe check-device`: the run's .tflite files in MediaPipe Tasks on the user's own inputs, against its Keras model.

Registered on the `dlpipe` group by `dlpipe.pipelines.cli`; TensorFlow is imported only when it runs, and
MediaPipe never in this process (it runs in its own environment: pipelines/mediapipe_env.py).
"""

from __future__ import annotations

import sys

import click

from dlpipe.pipelines.cli_common import check_writable, friendly_errors


@click.command("check-device")
@click.argument("source", metavar="RUN_OR_TFLITE")
@click.option("--data", required=True, metavar="PATH",
              help="Your own inputs: a folder of photos (class sub-folders named as the labels also give each "
                   "one's accuracy), or a file of sentences (a labelled file gives accuracy).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Where the JSON report goes (default: RUN/device_check.json).")
@click.option("--keras", "keras_file", type=click.Path(dir_okay=False), default=None,
              help="The reference Keras model (default: model.keras in the .tflite's run folder, else the named "
                   "model the .tflite was exported from, e.g. coco-detector).")
@click.option("--mediapipe-python", default=None, metavar="PATH",
              help="The MediaPipe environment's python (default: $DLPIPE_MEDIAPIPE_PYTHON, else .venv-mediapipe "
                   "that scripts/setup.sh creates).")
@click.option("--web", is_flag=True,
              help="Also run each file in MediaPipe Tasks Web in headless Chromium (the page `dlpipe export --format "
                   "web` writes; needs chromium and the web files scripts/setup.sh fetches).")
@click.option("--min-agreement", type=float, default=None,
              help="Exit with status 1 when a file agrees with the Keras model on fewer inputs (a detector: finds "
                   "fewer of its boxes) than this (0-1).")
@friendly_errors
def check_device_command(source: str, data: str, out_file: str | None, keras_file: str | None,
                         mediapipe_python: str | None, web: bool, min_agreement: float | None) -> None:
    """Run RUN_OR_TFLITE's .tflite file(s) in MediaPipe Tasks (ImageClassifier, TextClassifier, ObjectDetector) on
    --data as an app on a device does (raw photos, raw sentences), and report each file's top-1 agreement with the
    run's Keras model (on the same raw inputs through dlpipe's own preprocessing), the accuracy of each, and the
    inputs they disagree on; for a detector, the share of the Keras model's boxes MediaPipe finds (same label,
    IoU >= 0.9), and the photos with boxes missed or added. Writes the report as JSON and each file's figures under "mediapipe" in the run's artifacts.json."""
    from dlpipe.pipelines.device_check import agreement, check_device, summary_lines

    check_writable(out_file)
    report = check_device(source, data, out_file, keras_file, mediapipe_python, web)
    for line in summary_lines(report):
        click.echo(line)
    if report["skipped"]:
        click.echo(f"{len(report['skipped'])} inputs skipped (unreadable; listed in the report)", err=True)
    click.echo(f"report: {report['report_file']}", err=True)
    checked = [*report["files"].items(), *((f"{name} (web)", figures) for name, figures in report.get("web", {}).items())]
    low = [name for name, figures in checked
           if min_agreement is not None and (agreement(figures) or 0.0) < min_agreement]
    if low:
        click.echo(f"below --min-agreement {min_agreement}: {', '.join(low)}", err=True)
        sys.exit(1)
