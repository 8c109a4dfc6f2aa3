"""`captured_output` hides what native code writes to the process's stderr, and gives stderr back afterwards even
when blocks overlap in two threads (a batch job's workers each make an interpreter for a new batch size)."""

from __future__ import annotations

import os
import threading

import pytest

from dlpipe.quiet import captured_output


def test_overlapping_blocks_in_two_threads_give_stderr_back(capfd, monkeypatch):
    monkeypatch.delenv("DLPIPE_VERBOSE", raising=False)
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with captured_output(stdout=False):
            first_in.set()
            second_in.wait(10)
            os.write(2, b"hidden 1\n")
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with captured_output(stdout=False):  # begins inside the first block, ends after it
            second_in.set()
            first_out.wait(10)
            os.write(2, b"hidden 2\n")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    os.write(2, b"shown after both\n")
    err = capfd.readouterr().err
    # each block saving and restoring on its own left stderr on the first block's deleted file: nothing shown
    assert "shown after both" in err and "hidden" not in err, err


def test_a_failing_block_shows_what_it_captured(capfd, monkeypatch):
    monkeypatch.delenv("DLPIPE_VERBOSE", raising=False)
    with pytest.raises(RuntimeError):
        with captured_output():
            os.write(1, b"converter said this\n")
            raise RuntimeError("conversion failed")
    os.write(2, b"and stderr is back\n")
    err = capfd.readouterr().err
    assert "converter said this" in err and "and stderr is back" in err
