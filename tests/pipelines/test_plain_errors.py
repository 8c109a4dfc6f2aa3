"""Failures whose cause is plain say the cause and the remedy in one line, not `internal error`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SETS
from dlpipe.errors import ConfigError, RunStateError


def tiny_model():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_small_cnn_refuses_an_input_it_cannot_pool_before_building(color_folder, tmp_path):
    from dlpipe.models.backbones import get_backbone
    from dlpipe.pipelines import api

    with pytest.raises(ConfigError, match=r"model.image_size: small_cnn needs inputs of at least 16 px \(received 8\)"):
        api.run("image-classify", data=str(color_folder), out=tmp_path / "out", sets=[*TINY_SETS, "model.image_size=8"],
                echo=lambda _: None)
    get_backbone("small_cnn").check_input_size(16)  # the smallest it builds: four 2x2 poolings down to 1x1
    get_backbone("small_cnn").build_with((16, 16, 3), None)
    with pytest.raises(ConfigError, match="at least 32"):
        get_backbone("mobilenet_v2").check_input_size(24)


def test_a_damaged_checkpoint_names_the_file_on_resume(tmp_path):
    from dlpipe.pipelines.training.checkpoints import backup_callback, load_checkpoint

    model = tiny_model()
    good = tmp_path / "train.weights.h5"
    model.save_weights(good)
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(RunStateError, match=r"truncated.weights.h5: checkpoint is damaged .* delete it .*--overwrite"):
        load_checkpoint(model, truncated)
    load_checkpoint(model, good)  # a sound file still loads

    backup = tmp_path / "backup_train"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(np.random.default_rng(0).bytes(3000))
    (backup / "training_metadata.json").write_text('{"epoch": 1}')
    x, y = np.zeros((4, 4), np.float32), np.zeros(4, np.int64)
    with pytest.raises(RunStateError, match="backup_train: checkpoint is damaged"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[backup_callback(backup)])
    (backup / "latest.weights.h5").unlink()
    (backup / "training_metadata.json").write_text('{"epoch": ')  # cut off mid-write
    with pytest.raises(RunStateError, match="backup_train: checkpoint is damaged"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[backup_callback(backup)])


def test_a_backup_cut_off_mid_write_resumes_from_the_one_before(tmp_path):
    """A process killed while it wrote its latest backup (a killed tune worker did) leaves that file damaged: the
    resumed phase goes on from the previous backup, kept beside it, and trains one epoch again."""
    import keras

    from dlpipe.pipelines.training.checkpoints import backup_callback, check_checkpoints

    class Stop(Exception):
        pass

    class Record(keras.callbacks.Callback):
        def __init__(self, stop_at=None):
            super().__init__()
            self.begun, self.stop_at = [], stop_at

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == self.stop_at:
                raise Stop()
            self.begun.append(epoch)

    x, y = np.zeros((4, 4), np.float32), np.zeros(4, np.int64)
    backup = tmp_path / "run" / "checkpoints" / "backup_train"
    with pytest.raises(Stop):  # killed at the start of epoch 3: backups of epochs 1 (previous) and 2 (latest)
        tiny_model().fit(x, y, epochs=5, verbose=0, callbacks=[backup_callback(backup), Record(stop_at=3)])
    latest = backup / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[:300])  # cut off mid-write
    (backup / "training_metadata.json").write_text('{"epo')
    check_checkpoints(tmp_path / "run")  # not refused before TensorFlow: the previous backup is sound
    record = Record()
    tiny_model().fit(x, y, epochs=5, verbose=0, callbacks=[backup_callback(backup), record])
    assert record.begun == [2, 3, 4]  # from the previous backup (epoch 1 done): epoch 2 again, nothing lost before it


def failing_command(error: BaseException):
    """A click command that fails with `error`, wrapped as every dlpipe command is."""
    import click

    from dlpipe.pipelines.cli_common import friendly_errors

    @click.command()
    @click.option("--out", "out_dir")
    @friendly_errors
    def command(out_dir):
        raise error

    return command


def run_cli(command, *args: str):
    from click.testing import CliRunner

    result = CliRunner().invoke(command, list(args))
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    return result.exit_code, lines[0]


def test_full_disk_read_only_and_denied_writes_say_so(tmp_path):
    import errno

    code, line = run_cli(failing_command(OSError(errno.ENOSPC, "No space left on device")), "--out", str(tmp_path))
    assert code == 2 and line.startswith(f"error: {tmp_path}: no space left on the device") and "free some" in line
    wrapped = RuntimeError("{{function_node SaveV2}} out/x.data-00000; No space left on device [Op:SaveV2]")
    code, line = run_cli(failing_command(wrapped))  # TensorFlow's wording, not an OSError
    assert code == 2 and "no space left on the device" in line
    temporary = OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".m.json.abc123.tmp"))
    code, line = run_cli(failing_command(temporary), "--out", str(tmp_path / "m.json"))
    assert code == 2 and line == f"error: {tmp_path / 'm.json'}: the file system is read-only; write to a writable folder (--out)"
    code, line = run_cli(failing_command(PermissionError(errno.EACCES, "Permission denied", "/data/x.jpg")))
    assert code == 2 and line.startswith("error: /data/x.jpg: permission denied; fix its permissions")
    h5py_words = OSError("Unable to create file (unable to open file: name = 'out/best.weights.h5', errno = 30, "
                         "error message = 'Read-only file system')")
    assert run_cli(failing_command(h5py_words))[1].startswith("error: out/best.weights.h5: the file system is read-only")


def test_an_unexpected_error_names_the_log_file_with_its_traceback(tmp_path):
    code, line = run_cli(failing_command(RuntimeError("boom\nsecond line")), "--out", str(tmp_path))
    log = tmp_path / "dlpipe-error.log"
    assert code == 1 and line == (f"internal error: RuntimeError: boom (the traceback is in {log}; please report it)")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "raise error" in text and "second line" in text
    code, line = run_cli(failing_command(KeyError("gone")))  # no --out: a temp file
    path = Path(line.split("the traceback is in ")[1].split(";")[0])
    try:
        assert code == 1 and path.name.startswith("dlpipe-error-") and "KeyError: 'gone'" in path.read_text()
    finally:
        path.unlink()


@pytest.mark.parametrize("fmt", ["savedmodel", "tflite"])
def test_a_full_disk_during_export_is_one_plain_error(tmp_path, monkeypatch, fmt):
    """The SavedModel write fails with ENOSPC; the TFLite converter hides it (its fallback fails with a TypeError)."""
    import errno
    import shutil

    import keras

    from dlpipe.data.preprocess import ImagePreprocessing
    from dlpipe.errors import DataError
    from dlpipe.models import artifacts
    from dlpipe.models.export import ExportRequest, export

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    request = ExportRequest(artifacts.Bundle("image", ["a", "b"], ImagePreprocessing(image_size=8, resize="stretch")))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", disk_full)  # the backend's class
    if fmt == "tflite":  # the errno is lost: plenty of free space, so the converter's own error stays as it is
        from tensorflow.lite.python import lite

        def freezing_fails(self):  # the converter's fallback in a fresh process; once a test has loaded a TF-Hub
            raise TypeError("as in a fresh process")  # module it freezes the model without touching the disk

        monkeypatch.setattr(lite.TFLiteKerasModelConverterV2, "_freeze_keras_model", freezing_fails)
        with pytest.raises(TypeError):
            export(model, fmt, tmp_path / "roomy", request)
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=300_000))
    with pytest.raises(DataError, match=rf"no space left on the device .* writing the {fmt} export; free some space"):
        export(model, fmt, tmp_path / "full", request)
    assert not any((tmp_path / "full").rglob("*.tflite")) and not (tmp_path / "full" / "savedmodel").exists()


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
def test_a_text_line_over_the_csv_field_limit_is_a_bad_line_not_a_crash(tmp_path, suffix):
    import csv

    from dlpipe.data.multilabel import read_multilabel
    from dlpipe.data.text import read_labelled_text, read_unlabelled_texts
    from dlpipe.errors import DataError

    sep = "\t" if suffix == ".tsv" else ","
    lines = [f"text number {i}{sep}{i % 2}" for i in range(20)]
    lines[5] = "x" * (csv.field_size_limit() + 10) + f"{sep}1"
    mixed = tmp_path / f"mixed{suffix}"
    mixed.write_text("\n".join(lines) + "\n")
    table = read_labelled_text([mixed])  # one bad line of 20: skipped and listed, the rest trains
    assert len(table.texts) == 19 and table.skipped[0][1] == 6 and "split or shorten it" in table.skipped[0][2]
    row = read_unlabelled_texts(mixed)[5]  # predict: an error row for that line, answers for the others
    assert row[0] == f"{mixed}:6" and row[1] is None and row[2].startswith("a field over 131,072 characters")
    alone = tmp_path / f"alone{suffix}"
    alone.write_text(lines[5] + "\n")
    with pytest.raises(DataError, match=rf"alone{suffix}:1: a field over .*split or shorten it"):
        read_labelled_text([alone])
    unclosed = tmp_path / "labels.csv"
    unclosed.write_text('path,labels\na.jpg,"cat\n' + "b.jpg,dog\n" * 20_000)
    with pytest.raises(DataError, match=r"labels.csv:2: a field over .* close every quote"):
        read_multilabel(unclosed)


def test_a_truncated_or_random_tflite_is_named_with_a_remedy(tiny_tflite, tmp_path):
    """predict, evaluate and serve all load through load_runtime: a cut or random file is one DataError."""
    import shutil

    from dlpipe.errors import DataError
    from dlpipe.models.runtimes import load_runtime

    data = (tiny_tflite / "model.tflite").read_bytes()
    cuts = [100, len(data) // 4, len(data) // 2, len(data) - 200]
    samples = {f"cut{n}": data[:n] for n in cuts}
    samples["random"] = np.random.default_rng(0).bytes(5000)
    samples["identifier-then-random"] = data[:8] + np.random.default_rng(1).bytes(5000)
    for name, content in samples.items():
        folder = tmp_path / name
        folder.mkdir()
        for side in ("labels.txt", "preprocessing.json"):
            shutil.copy(tiny_tflite / side, folder / side)
        (folder / "model.tflite").write_bytes(content)
        with pytest.raises(DataError, match=r"model.tflite: is not a usable TFLite model \(.*\); export it again"):
            load_runtime(folder / "model.tflite")
    assert load_runtime(tiny_tflite / "model.tflite").predict(np.zeros((1, 16, 16, 3), np.float32)).shape == (1, 2)


def test_resume_checks_every_checkpoint_before_tensorflow_starts(tmp_path):
    import shutil

    from dlpipe.pipelines.training.checkpoints import check_checkpoints

    model = tiny_model()
    run = tmp_path / "run"
    (run / "checkpoints" / "backup_train").mkdir(parents=True)
    model.save_weights(run / "checkpoints" / "train.weights.h5")
    shutil.copy(run / "checkpoints" / "train.weights.h5", run / "checkpoints" / "backup_train" / "latest.weights.h5")
    (run / "checkpoints" / "backup_train" / "training_metadata.json").write_text('{"epoch": 2}')
    check_checkpoints(run)  # a sound run passes
    fold = run / "folds" / "1" / "checkpoints" / "backup_head"
    fold.mkdir(parents=True)
    (fold / "training_metadata.json").write_text('{"epo')
    with pytest.raises(RunStateError, match=r"folds/1/checkpoints/backup_head: checkpoint is damaged"):
        check_checkpoints(run)
    shutil.rmtree(run / "folds")
    best = run / "checkpoints" / "best_train.weights.h5"
    best.write_bytes((run / "checkpoints" / "train.weights.h5").read_bytes()[:700])
    with pytest.raises(RunStateError, match=r"best_train.weights.h5: checkpoint is damaged .*truncated"):
        check_checkpoints(run)


@pytest.mark.parametrize("command, args", [
    ("predict_command", ["no-such-model", "photo.jpg", "--out", "{out}/rows.jsonl"]),
    ("evaluate_command", ["no-such-model", "--data", "photos", "--out", "{out}/sub/metrics.json"]),
])
def test_a_read_only_out_is_refused_before_any_work(tmp_path, monkeypatch, command, args):
    import errno

    from dlpipe.pipelines import cli_common, cli_deploy

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "tmpab12cd"))

    monkeypatch.setattr(cli_common.tempfile, "TemporaryFile", read_only)
    args = [arg.format(out=tmp_path) for arg in args]
    code, line = run_cli(getattr(cli_deploy, command), *args)
    # the model is never looked for: the missing model would be the error otherwise
    assert code == 2 and line == f"error: {args[-1]}: the file system is read-only; write to a writable folder (--out)"


def test_ctrl_c_says_how_to_continue_each_kind_of_command():
    """A run continues with --resume, a tune study by the same command again; a command that keeps nothing says
    only that it was interrupted."""
    import click
    from click.testing import CliRunner

    from dlpipe.pipelines.cli_common import friendly_errors

    def interrupted(name: str, **options: object) -> click.Command:
        def body(**_: object) -> None:
            raise KeyboardInterrupt

        body.__name__ = name
        command = friendly_errors(body)
        for option in options:
            command = click.option(f"--{option}", is_flag=True)(command)
        return click.command(name)(command)

    said = {name: CliRunner().invoke(interrupted(name, **options), []) for name, options in
            (("run_command", {"resume": True}), ("tune_command", {}), ("export_command", {}))}
    assert all(result.exit_code == 130 for result in said.values())
    assert "rerun with --resume" in said["run_command"].output
    assert "run the same command again" in said["tune_command"].output and "--resume" not in said["tune_command"].output
    assert said["export_command"].output.strip() == "interrupted"
