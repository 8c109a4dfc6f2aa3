"""Export a trained model to the deployable formats; used by the export stage and `dlpipe export`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from dlpipe.errors import DlpipeError

FORMATS = ("keras", "savedmodel", "tflite", "tflite-float16", "tflite-dynamic", "tflite-int8")


def export_model(model: Any, fmt: str, out_dir: Path, class_names: list[str], preprocessing: Any, kind: str,
                 train_paths: Sequence[str] = ()) -> Path:
    """Write `model` in format `fmt` under `out_dir`; returns the file or folder written.

    Text models take raw strings in .keras and SavedModel, token ids in TFLite
    (the vocabulary is shipped with the file); `preprocessing.vocab_file` must be
    a readable path for WordPiece models.
    """
    from dlpipe.models import artifacts, export_formats

    if fmt == "keras":
        return artifacts.save_keras(model, out_dir / "model.keras")
    quantize = fmt.partition("-")[2] or "none"
    if kind == "text":
        from dlpipe.models.text_export import export_text_savedmodel
        from dlpipe.models.text_tflite import export_text_tflite

        if fmt == "savedmodel":
            return export_text_savedmodel(model, out_dir / "savedmodel", class_names, preprocessing)
        return export_text_tflite(model, out_dir / export_formats.tflite_name(quantize), class_names, preprocessing, quantize)
    if fmt == "savedmodel":
        return export_formats.export_image_savedmodel(model, out_dir / "savedmodel", class_names, preprocessing)
    representative = None
    if quantize == "int8":
        if not train_paths:
            raise DlpipeError("export: int8 needs training images for calibration; the run's load.path has none")
        representative = export_formats.representative_images(list(train_paths), preprocessing)
    return export_formats.export_image_tflite(model, out_dir / export_formats.tflite_name(quantize), class_names,
                                              preprocessing, quantize, representative)


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path | None = None) -> Path:
    """`dlpipe export`: re-export a finished run's model.keras in another format."""
    import yaml

    from dlpipe.data.images import scan_image_folder
    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.data.text import TextPreprocessing
    from dlpipe.models import artifacts

    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise DlpipeError(f"export: unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    model = artifacts.load_keras(run_dir / "model.keras")
    prep = artifacts.read_preprocessing(run_dir)
    kind = prep.pop("kind", "image")
    if kind == "text":
        preprocessing: Any = TextPreprocessing.from_dict(prep)
        if preprocessing.vocab_file:  # preprocessing.json names the vocabulary the run folder holds
            preprocessing = dataclasses.replace(preprocessing, vocab_file=str(run_dir / preprocessing.vocab_file))
    else:
        preprocessing = ImagePreprocessing.from_dict(prep)
    train_paths: list[str] = []
    config_file = run_dir / "config.yaml"
    if kind == "image" and fmt == "tflite-int8" and config_file.is_file():
        data = yaml.safe_load(config_file.read_text(encoding="utf-8")).get("load", {}).get("path")
        if data:
            train_paths = scan_image_folder(data, verify=False).paths
    return export_model(model, fmt, Path(out_dir) if out_dir else run_dir, artifacts.read_labels(run_dir),
                        preprocessing, kind, train_paths)
