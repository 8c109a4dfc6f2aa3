"""Stage `export` (image-classify): the shared export, shipping the full-integer `.tflite` by default.

A default run writes `model_int8.tflite` beside `model.keras` and `savedmodel/`, its parity with the Keras model
measured at export, so `dlpipe predict`, `serve` and the batch job of a default run take it through `--artifact
auto` when it is within the parity tolerance (issue 26): the fastest faithful artifact on a CPU, and what an edge
device runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlpipe.pipelines.config import option
from dlpipe.pipelines.stages.export import ExportConfig, ExportStage

DEFAULT_FORMATS = ["keras", "savedmodel", "tflite-int8"]


@dataclass(frozen=True)
class ImageExportConfig(ExportConfig):
    """Which artifacts to write (`dlpipe export RUN` adds more later); the int8 `.tflite` is one by default."""

    formats: list[str] = option(DEFAULT_FORMATS, ExportConfig.formats_help)


class ImageExportStage(ExportStage):
    """The shared export with the image task's default formats."""

    config_cls = ImageExportConfig
