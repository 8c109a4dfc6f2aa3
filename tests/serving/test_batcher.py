"""Dynamic batching: concurrent requests share model calls, each gets its own rows, a full queue refuses."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from dlpipe.serving.batcher import DynamicBatcher, QueueFull


def test_concurrent_requests_share_calls_and_get_their_own_rows():
    calls: list[int] = []

    def predict(items):
        calls.append(len(items))
        return np.asarray(items, np.float32)[:, None] * 2

    async def main():
        batcher = DynamicBatcher(max_batch_size=8, max_wait_ms=50, max_queue=64)
        results = await asyncio.gather(*(batcher.submit(predict, 1, [i, i + 100]) for i in range(4)))
        await batcher.close()
        return results

    results = asyncio.run(main())
    for i, rows in enumerate(results):
        np.testing.assert_array_equal(rows[:, 0], [2 * i, 2 * (i + 100)])
    assert sum(calls) == 8 and len(calls) < 4  # batched: fewer model calls than requests


def test_a_full_queue_refuses_at_once_and_errors_reach_every_request():
    release = threading.Event()

    def slow(items):
        release.wait(5)
        return np.zeros((len(items), 1))

    def broken(items):
        raise RuntimeError("model exploded")

    async def main():
        batcher = DynamicBatcher(max_batch_size=1, max_wait_ms=0, max_queue=1)
        first = asyncio.create_task(batcher.submit(slow, 1, [0]))
        await asyncio.sleep(0.05)  # the worker takes `first`; one more fits in the queue
        second = asyncio.create_task(batcher.submit(slow, 1, [1]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull, match="1 requests are already waiting"):
            await batcher.submit(slow, 1, [2])
        release.set()
        await asyncio.gather(first, second)
        await batcher.close()
        roomy = DynamicBatcher(max_batch_size=4, max_wait_ms=20, max_queue=8)
        outcomes = await asyncio.gather(*(roomy.submit(broken, 2, [i]) for i in range(2)), return_exceptions=True)
        await roomy.close()
        return outcomes

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outcomes)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(max_batch_size=0)
