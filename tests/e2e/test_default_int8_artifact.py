"""A default image-classify run ships its full-integer .tflite, and `--artifact auto` runs it (issue 26)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_SETS, tiny_image_run


@pytest.mark.long  # a whole run with the default export's two calibrations: ~17 s of the suite's 10 minutes
def test_a_run_with_the_default_formats_ships_int8_and_auto_chooses_it(tmp_path_factory):
    from dlpipe.models.artifacts import choose_artifact

    sets = [s for s in TINY_SETS if not s.startswith("export.formats")]
    _, out, result = tiny_image_run(tmp_path_factory, [*sets, "train.epochs=12", "train.learning_rate=0.003"])
    assert result.config["export"].formats == ["keras", "savedmodel", "tflite-int8"]
    record = json.loads((out / "artifacts.json").read_text())["model_int8.tflite"]
    assert record["parity"]["top1_agreement"] is not None  # checked against the Keras model, not assumed
    path, why = choose_artifact(out)
    assert path.name == "model_int8.tflite", why
