"""Every zip dlpipe opens is checked before a member is read: a decompression bomb, too many members or a member
path that climbs out is one error line naming the file (issue 27); a genuine model.keras still loads."""

from __future__ import annotations

import io
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from archive_bombs import with_extra_member, write_keras_bomb, write_tiny_keras
from dlpipe.errors import DataError
from dlpipe.models import archive_limits, artifacts
from dlpipe.models.tflite_metadata import associated_files
from dlpipe.pipelines.cli import main


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory) -> Path:
    return write_tiny_keras(tmp_path_factory.mktemp("tiny-keras"))


@pytest.fixture
def no_member_read(monkeypatch):
    """Fail the test if anything inflates a zip member (the check must decide from the central directory)."""
    original = zipfile.ZipFile.open

    def refuse_reading(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            raise AssertionError(f"member {name} of {self.filename} was opened for reading")
        return original(self, name, mode, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "open", refuse_reading)


def bomb_beside_side_files(tiny_keras: Path, folder: Path, inflated_bytes: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for side in (artifacts.LABELS_FILE, artifacts.PREPROCESSING_FILE):
        shutil.copy(tiny_keras.parent / side, folder / side)
    return write_keras_bomb(folder / artifacts.KERAS_FILE, inflated_bytes)


def test_predict_refuses_a_zip_bomb_in_one_line(tiny_keras, tmp_path, no_member_read):
    bomb = bomb_beside_side_files(tiny_keras, tmp_path / "bomb", 64 << 20)  # 64 MiB in a ~65 kB file: over 100x
    assert bomb.stat().st_size < 200_000
    image = tmp_path / "photo.png"
    Image.new("RGB", (16, 16), "blue").save(image)
    started = time.perf_counter()
    result = CliRunner().invoke(main, ["predict", str(bomb), str(image)])
    seconds = time.perf_counter() - started
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith(f"error: {bomb}: "), result.output
    assert "member 'config.json' inflates to 67,108,864 bytes" in lines[0] and "DLPIPE_MAX_ARCHIVE_BYTES" in lines[0]
    assert seconds < 5


def test_the_absolute_cap_comes_from_the_environment(tiny_keras, tmp_path, monkeypatch, no_member_read):
    from dlpipe.models.runtimes import load_runtime

    bomb = bomb_beside_side_files(tiny_keras, tmp_path / "bomb", 4 << 20)  # under the ratio floor: only the cap
    monkeypatch.setenv("DLPIPE_MAX_ARCHIVE_BYTES", str(1 << 20))
    with pytest.raises(DataError, match="over the limit of 1,048,576") as error:
        load_runtime(bomb.parent)
    assert error.value.path == str(bomb)
    # an argument wins over the environment
    archive_limits.check_archive_file(bomb, archive_limits.ArchiveLimits.from_env(max_bytes=8 << 20))


def test_a_member_path_outside_the_archive_is_refused(tiny_keras, tmp_path, no_member_read):
    for member in ("../../evil.py", "/etc/evil.py", "assets/..\\..\\evil.py"):
        climbing = with_extra_member(tiny_keras, tmp_path / "climb" / "model.keras", member)
        with pytest.raises(DataError, match="points outside the archive") as error:
            artifacts.load_keras(climbing)
        assert error.value.path == str(climbing)


def test_too_many_members_are_refused_before_the_directory_is_parsed(tmp_path, monkeypatch):
    many = tmp_path / "many.keras"
    with zipfile.ZipFile(many, "w") as archive:
        for index in range(50):
            archive.writestr(f"assets/{index}.txt", b"x")
    monkeypatch.setenv("DLPIPE_MAX_ARCHIVE_MEMBERS", "20")
    monkeypatch.setattr(zipfile.ZipFile, "__init__", lambda *a, **k: pytest.fail("the zip was parsed"))
    with pytest.raises(DataError, match="holds 50 members, over the limit of 20"):
        archive_limits.check_archive_file(many)


def test_a_bad_limit_in_the_environment_is_one_line(tmp_path, tiny_keras, monkeypatch):
    monkeypatch.setenv("DLPIPE_MAX_ARCHIVE_RATIO", "lots")
    with pytest.raises(DataError, match=r"\$DLPIPE_MAX_ARCHIVE_RATIO: 'lots' is not a number"):
        archive_limits.check_archive_file(tiny_keras)


def test_a_tflite_with_a_bomb_for_associated_files_is_refused(tmp_path, no_member_read):
    bomb = write_keras_bomb(tmp_path / "files.zip", 32 << 20, member="labels.txt")
    model = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 1000 + bomb.read_bytes()  # the zip rides on the model's end
    with pytest.raises(DataError, match="member 'labels.txt' inflates to 33,554,432 bytes"):
        associated_files(model)


def test_a_genuine_model_keras_still_loads_and_predicts(tiny_keras):
    import keras

    from dlpipe.models.runtimes import load_runtime

    runtime = load_runtime(tiny_keras)
    batch = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    reference = keras.saving.load_model(tiny_keras, compile=False)
    np.testing.assert_allclose(runtime.model.predict_on_batch(batch), reference.predict_on_batch(batch), atol=1e-6)
    # and the associated files of a .tflite still read back through the same check
    files = io.BytesIO()
    with zipfile.ZipFile(files, "w") as archive:
        archive.writestr("labels.txt", "blue\nred\n")
    assert associated_files(b"TFL3" + files.getvalue()) == {"labels.txt": b"blue\nred\n"}
