"""`dlpipe serve` on a models folder: a version whose file will not load (a zip bomb) is marked failed, logged
once and not loaded again on every poll, until its file is replaced (issue 27)."""

from __future__ import annotations

import logging
import shutil

import pytest

from archive_bombs import write_keras_bomb, write_tiny_keras
from dlpipe.models import artifacts, runtimes
from dlpipe.serving.repository import ModelRepository


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory):
    return write_tiny_keras(tmp_path_factory.mktemp("tiny-keras"))


def test_a_failed_model_is_logged_once_and_retried_only_when_its_file_changes(tiny_keras, tmp_path, monkeypatch,
                                                                               caplog):
    root = tmp_path / "models"
    shutil.copytree(tiny_keras.parent, root / "good" / "1")
    shutil.copytree(tiny_keras.parent, root / "bad" / "1")
    bomb = write_keras_bomb(root / "bad" / "1" / artifacts.KERAS_FILE, 64 << 20)  # over 100x its ~65 kB
    attempts: list[str] = []
    original = runtimes.load_runtime

    def counting(source, *args, **kwargs):
        attempts.append(str(source))
        return original(source, *args, **kwargs)

    monkeypatch.setattr(runtimes, "load_runtime", counting)
    with caplog.at_level(logging.WARNING, logger="dlpipe.serving"):
        repository = ModelRepository(root)
        for _ in range(4):  # four polls of `dlpipe serve --watch-seconds`
            assert repository.refresh() == []
    assert repository.names() == ["good"]
    failures = [record.getMessage() for record in caplog.records if "could not load bad" in record.getMessage()]
    assert len(failures) == 1 and "inflates to" in failures[0] and str(bomb) in failures[0]
    assert attempts.count(str(root / "bad" / "1")) == 1 and attempts.count(str(root / "good" / "1")) == 1
    assert len(repository.errors) == 1 and repository.errors[0].startswith("bad version 1: ")

    shutil.copy(tiny_keras, bomb)  # the file replaced by a good one: loaded on the next poll
    assert repository.refresh() == ["bad:1"]
    assert repository.names() == ["bad", "good"] and repository.errors == []
