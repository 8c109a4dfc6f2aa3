"""The artifact layer: side files written once, records with parity, and the choice of artifact."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from dlpipe.errors import DataError
from dlpipe.models import artifacts


@dataclass(frozen=True)
class Prep:
    size: int = 8

    def to_dict(self):
        return {"size": self.size}


def bundle(**provenance) -> artifacts.Bundle:
    return artifacts.Bundle("image", ["ant", "bee"], Prep(), provenance=provenance)


def fake_artifact(folder, name: str, seconds: float | None, agreement: float = 1.0, accuracy=None, reference=None):
    path = folder / name
    path.write_bytes(b"model")
    parity = None if seconds is None else {"top1_agreement": agreement, "seconds_per_item": seconds}
    if parity is not None and accuracy is not None:
        parity.update(accuracy=accuracy, reference_accuracy=reference)
    artifacts.write_record(path, name, bundle(source_run="runs/x"), parity)
    return path


def test_side_files_round_trip_and_records_accumulate(tmp_path):
    vocab = tmp_path / "source-vocab.txt"
    vocab.write_text("a\nb\n")
    written = artifacts.Bundle("text", ["neg", "pos"], Prep(3), {"vocab.txt": vocab})
    artifacts.write_side_files(tmp_path / "out", written)
    side = artifacts.read_side_files(tmp_path / "out" / "model.keras")
    assert side.task == "text" and side.class_names == ["neg", "pos"] and side.preprocessing == {"task": "text", "size": 3}
    assert side.file("vocab.txt").read_text() == "a\nb\n"
    with pytest.raises(DataError, match="missing beside the model"):
        side.file("other.txt")
    fake_artifact(tmp_path / "out", "model.keras", 0.01)
    fake_artifact(tmp_path / "out", "model_int8.tflite", 0.001)
    manifest = json.loads((tmp_path / "out" / "artifacts.json").read_text())
    assert set(manifest) == {"model.keras", "model_int8.tflite"}
    assert manifest["model_int8.tflite"]["source_run"] == "runs/x" and manifest["model_int8.tflite"]["dlpipe_version"]


def test_missing_side_files_name_the_file(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"x")
    with pytest.raises(DataError, match="labels.txt: labels file missing"):
        artifacts.read_side_files(tmp_path / "model.keras")


def test_auto_picks_the_fastest_artifact_within_the_tolerance(tmp_path):
    artifacts.write_side_files(tmp_path, bundle())
    fake_artifact(tmp_path, "model.keras", 0.010)
    fake_artifact(tmp_path, "model.tflite", 0.004)
    fake_artifact(tmp_path, "model_int8.tflite", 0.001, accuracy=0.90, reference=0.95)  # 5 points worse: refused
    fake_artifact(tmp_path, "model_float16.tflite", 0.002, agreement=0.995)
    path, why = artifacts.choose_artifact(tmp_path)
    assert path.name == "model_float16.tflite" and why.startswith("float16 (fastest within 1%")
    assert artifacts.choose_artifact(tmp_path, "int8")[0].name == "model_int8.tflite"  # asked for by name: given


def test_auto_falls_back_to_keras_without_parity_records(tmp_path):
    artifacts.write_side_files(tmp_path, bundle())
    (tmp_path / "model.keras").write_bytes(b"x")
    (tmp_path / "model_dynamic.tflite").write_bytes(b"x")  # written before records existed: never chosen blindly
    assert artifacts.choose_artifact(tmp_path)[0].name == "model.keras"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no model artifact"):
        artifacts.choose_artifact(empty)


def test_parity_rule():
    assert artifacts.parity_ok({"accuracy": 0.95, "reference_accuracy": 0.955})
    assert not artifacts.parity_ok({"accuracy": 0.93, "reference_accuracy": 0.955, "top1_agreement": 1.0})
    assert artifacts.parity_ok({"top1_agreement": 0.99}) and not artifacts.parity_ok({"top1_agreement": 0.98})


def test_a_file_packed_in_a_tflite_is_extracted_once_per_content(tmp_path):
    side = artifacts.SideFiles(tmp_path, "text", ["neg", "pos"], {}, embedded={"vocab.txt": b"a\nb\n"})
    first, again = side.file("vocab.txt"), side.file("vocab.txt")
    assert first == again and first.read_bytes() == b"a\nb\n"  # loading a model again writes no new copy
    other = artifacts.SideFiles(tmp_path, "text", ["neg", "pos"], {}, embedded={"vocab.txt": b"c\n"})
    assert other.file("vocab.txt") != first and first.read_bytes() == b"a\nb\n"



def test_an_unchecked_export_says_so_and_auto_never_picks_it(tmp_path):
    """Nothing compared (no reference box, no mask, no sample) is parity null, not 1.0, and auto skips it."""
    import numpy as np

    from dlpipe.models.tasks.segment.metrics import agreement
    from dlpipe.models.tasks import get_task

    empty = np.zeros((2, 10, 6), np.float32)  # two photos, no detection above any threshold
    assert get_task("detect").parity(empty, empty)["top1_agreement"] is None
    assert agreement([], [])["top1_agreement"] is None
    assert get_task("image").parity(np.zeros((0, 2)), np.zeros((0, 2)))["top1_agreement"] is None
    assert not artifacts.parity_ok({"top1_agreement": None, "seconds_per_item": 0.001})

    fake_artifact(tmp_path, "model.keras", 0.010)
    fake_artifact(tmp_path, "model.tflite", 0.001, agreement=None)  # fastest, but checked on nothing
    fake_artifact(tmp_path, "model_float16.tflite", 0.005)
    path, why = artifacts.choose_artifact(tmp_path, "auto")
    assert path.name == "model_float16.tflite", why


@pytest.mark.parametrize("task, empty", [("segment", (0, 8, 8, 2)), ("multilabel", (0, 3)), ("gan", (0, 8, 8, 1)),
                                         ("text", (0, 2))])
def test_every_task_reports_nothing_compared_as_null(task, empty):
    """A parity check on no inputs compares nothing: every figure is null, none is the 1.0 (or 0.0) of a perfect check."""
    import numpy as np

    from dlpipe.models.tasks import get_task

    parity = get_task(task).parity(np.zeros(empty, np.float32), np.zeros(empty, np.float32))
    assert parity["top1_agreement"] is None and parity.get("max_abs_diff") is None, parity
    assert artifacts.parity_state(parity) == "unchecked" and not artifacts.parity_ok(parity)


def test_a_checked_export_wins_and_an_unchecked_one_runs_only_alone_saying_so(tmp_path):
    """Without a Keras model: the checked faithful export beats a faster unchecked one; with no checked one, auto
    still runs something but says it is unchecked."""
    artifacts.write_side_files(tmp_path, bundle())
    fake_artifact(tmp_path, "model_int8.tflite", 0.001, agreement=None)  # fastest, parity null
    fake_artifact(tmp_path, "model_float16.tflite", 0.004)
    path, why = artifacts.choose_artifact(tmp_path)
    assert path.name == "model_float16.tflite" and "unchecked" not in why, why

    alone = tmp_path / "alone"
    artifacts.write_side_files(alone, bundle())
    fake_artifact(alone, "model_int8.tflite", 0.001, agreement=None)
    (alone / "model_dynamic.tflite").write_bytes(b"x")  # no record at all
    path, why = artifacts.choose_artifact(alone)
    assert "unchecked: no artifact here is checked" in why and "int8 unchecked" in why and "dynamic unchecked" in why
    assert artifacts.parity_state({"top1_agreement": 0.2, "seconds_per_item": 0.001}) == "unfaithful"
    assert artifacts.parity_state({"top1_agreement": None, "accuracy": 0.9, "reference_accuracy": 0.9}) == "faithful"
