"""Dynamic batching: concurrent requests share one model call.

Requests wait in a bounded queue; a worker takes up to `max_batch_size`
items, waiting at most `max_wait_ms` for the batch to fill, runs the model
once in a thread (the event loop keeps accepting requests) and hands each
request its own rows. A full queue is refused at once (the server answers 503).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np


class QueueFull(Exception):
    """The batcher's queue is full: the caller should answer 503 and let the client retry."""


@dataclass
class _Pending:
    items: Sequence[Any]
    future: asyncio.Future


class DynamicBatcher:
    """Collects (model, items) submissions and runs them in batches per model."""

    def __init__(self, max_batch_size: int = 32, max_wait_ms: float = 5.0, max_queue: int = 256):
        if max_batch_size < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1 and max_wait_ms >= 0. "
                             f"Received: {max_batch_size}, {max_queue}, {max_wait_ms}")
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._queues: dict[int, asyncio.Queue] = {}
        self._workers: dict[int, asyncio.Task] = {}
        self.batches_run = 0
        self.items_run = 0

    async def submit(self, predict: Callable[[Sequence[Any]], np.ndarray], key: int, items: Sequence[Any]) -> np.ndarray:
        """Probabilities for `items`, computed in a batch with other requests for the same model `key`."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = asyncio.Queue(self.max_queue)
            self._workers[key] = asyncio.create_task(self._work(queue, predict))
        future = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(_Pending(items, future))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are already waiting") from None
        return await future

    async def _work(self, queue: asyncio.Queue, predict: Callable[[Sequence[Any]], np.ndarray]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            size = len(batch[0].items)
            deadline = loop.time() + self.max_wait
            while size < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                batch.append(pending)
                size += len(pending.items)
            items = [item for pending in batch for item in pending.items]
            try:
                outputs = await loop.run_in_executor(None, predict, items)
                if len(outputs) != len(items):
                    raise RuntimeError(f"model returned {len(outputs)} rows for {len(items)} inputs")
            except Exception as error:  # every request of the batch gets the error
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            self.batches_run += 1
            self.items_run += len(items)
            start = 0
            for pending in batch:
                end = start + len(pending.items)
                if not pending.future.done():
                    pending.future.set_result(outputs[start:end])
                start = end

    async def close(self) -> None:
        for task in self._workers.values():
            task.cancel()
        self._workers.clear()
        self._queues.clear()
