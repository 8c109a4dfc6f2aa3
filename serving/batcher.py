"""Dynamic batching: concurrent requests share one model call, only when it pays.

Requests wait in a bounded queue per model; `num_batch_threads` workers per
model each take up to `max_batch_size` items, waiting at most `max_wait_ms`
for a batch to fill, and run the model in a thread (the event loop keeps
accepting requests) on their own interpreter of the model's pool. This is TF
Serving's CPU advice: as many batch threads as cores and a zero or small
timeout, so an idle server answers at once (a wait of 0 batches only what is
already queued) and a busy one batches what piled up. A full queue is refused
at once (the server answers 503).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from dlpipe.serving.batching_defaults import SERVER_MAX_BATCH_SIZE, SERVER_MAX_QUEUE, SERVER_MAX_WAIT_MS


class QueueFull(Exception):
    """The batcher's queue is full: the caller should answer 503 and let the client retry."""


@dataclass(frozen=True)
class BatchPolicy:
    """How one model's requests are batched (the server's flags, or the model folder's serving.json)."""

    max_batch_size: int = SERVER_MAX_BATCH_SIZE
    max_wait_ms: float = SERVER_MAX_WAIT_MS
    num_batch_threads: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.num_batch_threads < 1 or self.max_wait_ms < 0:
            raise ValueError("max_batch_size and num_batch_threads must be >= 1 and max_wait_ms >= 0. Received: "
                             f"{self.max_batch_size}, {self.num_batch_threads}, {self.max_wait_ms}")


@dataclass
class _Pending:
    items: Sequence[Any]
    future: asyncio.Future


class DynamicBatcher:
    """Collects (model, items) submissions and runs them in batches per model."""

    def __init__(self, max_batch_size: int = SERVER_MAX_BATCH_SIZE, max_wait_ms: float = SERVER_MAX_WAIT_MS,
                 max_queue: int = SERVER_MAX_QUEUE, num_batch_threads: int = 1):
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1. Received: {max_queue}")
        self.policy = BatchPolicy(max_batch_size, max_wait_ms, num_batch_threads)
        self.max_queue = max_queue
        self._queues: dict[int, asyncio.Queue] = {}
        self._workers: dict[int, list[asyncio.Task]] = {}
        self._executor: ThreadPoolExecutor | None = None
        self.batches_run = 0
        self.items_run = 0

    async def submit(self, predict: Callable[[Sequence[Any]], np.ndarray], key: int, items: Sequence[Any],
                     policy: BatchPolicy | None = None) -> np.ndarray:
        """Outputs for `items`, computed in a batch with other requests for the same model `key`.

        `policy` (the model's own settings) applies from a model's first submission on.
        """
        queue = self._queues.get(key)
        if queue is None:
            policy = policy or self.policy
            queue = self._queues[key] = asyncio.Queue(self.max_queue)
            self._workers[key] = [asyncio.create_task(self._work(queue, predict, policy))
                                  for _ in range(policy.num_batch_threads)]
        future = asyncio.get_running_loop().create_future()
        try:
            queue.put_nowait(_Pending(items, future))
        except asyncio.QueueFull:
            raise QueueFull(f"{self.max_queue} requests are already waiting") from None
        return await future

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:  # one thread per batch worker of every model; they block on the model only
            self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="dlpipe-batch")
        return self._executor

    async def _work(self, queue: asyncio.Queue, predict: Callable[[Sequence[Any]], np.ndarray],
                    policy: BatchPolicy) -> None:
        loop = asyncio.get_running_loop()
        wait = policy.max_wait_ms / 1000.0
        while True:
            batch = [await queue.get()]
            size = len(batch[0].items)
            deadline = loop.time() + wait
            while size < policy.max_batch_size:
                try:  # whatever is already waiting joins at once; then wait for more until the deadline
                    pending = queue.get_nowait()
                except asyncio.QueueEmpty:
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
                outputs = await loop.run_in_executor(self._pool(), predict, items)
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
        for tasks in self._workers.values():
            for task in tasks:
                task.cancel()
        self._workers.clear()
        self._queues.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
