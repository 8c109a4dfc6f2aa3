"""What every `dlpipe` command shares: one-line errors instead of tracebacks, and the --artifact help."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import click

from dlpipe.errors import DlpipeError
from dlpipe.system_errors import FULL_DISK_CODES, error_code, explain

ERROR_LOG = "dlpipe-error.log"  # written into the command's --out folder when it can be, else a temp file
OUT_OPTIONS = ("out", "out_dir", "out_file")  # the names the commands give their --out

ARTIFACT_HELP = ("Which artifact of a run or export folder runs: auto (the fastest whose parity with the Keras model, "
                 "measured at export, is within 1 point), keras, savedmodel, float32, float16, dynamic, int8 or onnx.")


def _how_to_continue(command: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    """What continues an interrupted command: --resume where it has one, the same command for a tune study."""
    if "resume" in kwargs:
        return "; checkpoints are kept: rerun with --resume to continue"
    if getattr(command, "__name__", "") == "tune_command":
        return "; the study is kept: run the same command again to continue it"
    return ""


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
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
            click.echo(f"interrupted{_how_to_continue(command, kwargs)}", err=True)
            sys.exit(130)
        except Exception as error:  # noqa: BLE001 - the last line of defence before a traceback
            if debug:
                traceback.print_exc()
            out = next((str(kwargs[name]) for name in OUT_OPTIONS if kwargs.get(name)), None)
            plain = explain(error, out)
            if plain:
                click.echo(f"error: {plain}", err=True)
                _exit_past_failed_writers(error, 2)
            first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            log = write_error_log(error, out)
            where = f"the traceback is in {log}" if log else "rerun with --debug for the traceback"
            click.echo(f"internal error: {type(error).__name__}: {first} ({where}; please report it)", err=True)
            sys.exit(1)

    wrapper = click.option("--debug", is_flag=True, help="Show the full traceback of an error.")(wrapper)
    return click.option("--verbose", is_flag=True, expose_value=False,
                        help="Show TensorFlow's own logs and the TFLite converter's output.")(wrapper)


def _exit_past_failed_writers(error: BaseException, code: int) -> None:
    """Exit with `code`; after a full disk met by h5py, without the interpreter's shutdown (exit handlers run).

    Keras' checkpoint writer leaves its HDF5 file open when the disk fills; at shutdown h5py then printed
    a traceback per object ("Can't decrement id ref count ... No space left on device") and Python died
    of SIGSEGV (exit 139) after the one-line error.
    """
    from_h5py = any("h5py" in frame.filename for frame in traceback.extract_tb(error.__traceback__))
    if error_code(error) not in FULL_DISK_CODES or not from_h5py:
        sys.exit(code)
    import atexit

    try:
        atexit._run_exitfuncs()  # temporary folders registered for removal at exit
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def write_error_log(error: BaseException, out: str | None) -> Path | None:
    """The traceback of an unexpected error, in OUT/dlpipe-error.log when --out is a folder, else a temp file."""
    text = (f"{time.strftime('%Y-%m-%d %H:%M:%S')} dlpipe {' '.join(sys.argv[1:])}\n"
            + "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    if out and Path(out).is_dir():
        try:
            with open(Path(out) / ERROR_LOG, "a", encoding="utf-8") as handle:
                handle.write(text + "\n")
            return Path(out) / ERROR_LOG
        except OSError:
            pass  # a read-only or full folder: the temp folder may still take it
    try:
        fd, path = tempfile.mkstemp(prefix="dlpipe-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return Path(path)
    except OSError:
        return None


def check_writable(path: str | None) -> None:
    """Before any work, a --out that cannot be written (a read-only disk, a folder dlpipe may not write to) is one
    line, not an error after the model ran: a file is made and removed in the folder that would hold it."""
    if not path:
        return
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    while not folder.exists() and folder != folder.parent:  # folders still to be made: their nearest ancestor
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        plain = explain(OSError(error.errno, error.strerror), path)  # the --out, not the probe's temporary name
        raise DlpipeError(plain or f"{path}: cannot be written ({error.strerror}); choose another --out") from None
