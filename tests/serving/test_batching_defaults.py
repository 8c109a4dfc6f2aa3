"""Each batching default is defined once (serving/batching_defaults.py) and every consumer takes it from there."""

from __future__ import annotations

import inspect

from dlpipe.pipelines.cli import main
from dlpipe.serving import batching_defaults as defaults
from dlpipe.serving.batch_job import result_rows
from dlpipe.serving.batcher import BatchPolicy, DynamicBatcher
from dlpipe.serving.server import ServerSettings


def _option(command: str, name: str):
    return next(p.default for p in main.commands[command].params if p.name == name)


def test_the_cli_server_batcher_and_batch_job_share_the_named_defaults():
    assert _option("predict", "batch_size") == inspect.signature(result_rows).parameters["batch_size"].default \
        == defaults.BATCH_JOB_BATCH_SIZE
    settings, policy = ServerSettings(), BatchPolicy()
    batcher = inspect.signature(DynamicBatcher).parameters
    assert _option("serve", "max_batch_size") == settings.max_batch_size == policy.max_batch_size \
        == batcher["max_batch_size"].default == defaults.SERVER_MAX_BATCH_SIZE
    assert _option("serve", "max_wait_ms") == settings.max_wait_ms == policy.max_wait_ms \
        == batcher["max_wait_ms"].default == defaults.SERVER_MAX_WAIT_MS
    assert _option("serve", "max_queue") == settings.max_queue == batcher["max_queue"].default == defaults.SERVER_MAX_QUEUE
    assert _option("serve", "batch_threads") == settings.num_batch_threads == defaults.BATCH_THREADS
    # on purpose: the batch job batches for throughput, the server for latency
    assert defaults.BATCH_JOB_BATCH_SIZE > defaults.SERVER_MAX_BATCH_SIZE
