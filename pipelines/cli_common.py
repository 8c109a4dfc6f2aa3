"""What every `dlpipe` command shares: one-line errors instead of tracebacks, and the --artifact help."""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Any, Callable

import click

from dlpipe.errors import DlpipeError

ARTIFACT_HELP = ("Which artifact of a run or export folder runs: auto (the fastest whose parity with the Keras model, "
                 "measured at export, is within 1 point), keras, savedmodel, float32, float16, dynamic or int8.")


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
            click.echo("interrupted; checkpoints are kept: rerun with --resume to continue", err=True)
            sys.exit(130)
        except Exception as error:  # noqa: BLE001 - the last line of defence before a traceback
            if debug:
                traceback.print_exc()
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            click.echo(f"internal error: {type(error).__name__}: {first} (rerun with --debug for details)", err=True)
            sys.exit(1)

    wrapper = click.option("--debug", is_flag=True, help="Show the full traceback of an error.")(wrapper)
    return click.option("--verbose", is_flag=True, expose_value=False,
                        help="Show TensorFlow's own logs and the TFLite converter's output.")(wrapper)
