"""The server's CPU layout: one LiteRT interpreter per batch thread, per-model batching from serving.json,
batches of what is already queued when no wait is set."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from dlpipe.errors import DataError
from dlpipe.models import artifacts
from dlpipe.serving.batcher import BatchPolicy, DynamicBatcher
from dlpipe.serving.repository import ModelRepository
from dlpipe.serving.server import ServerSettings, create_app


def test_a_pool_gives_each_thread_its_own_interpreter_with_the_same_answers(tiny_tflite):
    from dlpipe.models.runtimes import RuntimePool, load_runtime

    runtime = load_runtime(tiny_tflite / "model.tflite")
    pool = RuntimePool(runtime, 2, cores=2)
    assert len({id(r.interpreter) for r in pool.replicas}) == 2 and pool.threads_each == 1
    batches = [np.random.default_rng(i).uniform(0, 255, (i % 3 + 1, 16, 16, 3)).astype(np.float32) for i in range(8)]
    expected = [runtime.predict(batch) for batch in batches]
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, pool.predict(batches[i]))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, want in enumerate(expected):
        np.testing.assert_allclose(results[i], want, atol=1e-6)


def test_serving_json_sets_one_models_batching(tiny_tflite, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_tflite, folder)
    artifacts.write_serving_config(folder, max_batch_size=3, max_wait_ms=0, num_batch_threads=2)
    repository = ModelRepository(folder)
    model = repository.models()[0]
    calls: list[int] = []
    original = model.predict
    model.predict = lambda items: (calls.append(len(items)), original(items))[1]
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (10, 20, 200)).save(buffer, "JPEG")
    image = buffer.getvalue()

    instance = {"b64": base64.b64encode(image).decode()}
    with TestClient(create_app(repository, ServerSettings(max_batch_size=32, num_batch_threads=1))) as client:
        batching = client.get("/v1/models/model/metadata").json()["batching"]
        assert batching["max_batch_size"] == 3 and batching["num_batch_threads"] == 2
        response = client.post("/v1/models/model:predict", json={"instances": [instance] * 7})
        assert response.status_code == 200 and len(response.json()["predictions"]) == 7
    assert sum(calls) == 7 and max(calls) <= 3
    assert len(model.pool.replicas) == 2


@pytest.mark.parametrize("config, says", [({"max_batch_size": 0}, "max_batch_size must be at least 1"),
                                          ({"max_wait": 1}, "unknown key(s) max_wait"),
                                          ({"num_batch_threads": "4"}, "num_batch_threads must be an integer")])
def test_a_bad_serving_json_gets_a_one_line_reason(tiny_tflite, tmp_path, config, says):
    import json
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_tflite, folder)
    (folder / "serving.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="serving.json") as error:
        artifacts.read_serving_config(folder / "model.tflite")
    assert says in str(error.value) and "\n" not in str(error.value)


def test_no_wait_batches_what_piled_up_and_threads_run_at_once():
    both_running = threading.Barrier(2, timeout=5)
    release = threading.Event()
    calls: list[int] = []

    def concurrent(items):  # returns only if two model calls are in flight together
        both_running.wait()
        return np.zeros((len(items), 1))

    def slow(items):
        calls.append(len(items))
        release.wait(5)
        return np.zeros((len(items), 1))

    async def main():
        batcher = DynamicBatcher(max_queue=64)
        unbatched = BatchPolicy(max_batch_size=1, max_wait_ms=0, num_batch_threads=2)
        await asyncio.gather(*(batcher.submit(concurrent, 1, [i], unbatched) for i in range(2)))
        one_thread = BatchPolicy(max_batch_size=32, max_wait_ms=0, num_batch_threads=1)
        first = asyncio.create_task(batcher.submit(slow, 2, [0], one_thread))
        await asyncio.sleep(0.05)  # the worker is busy with `first`; five more pile up in the queue
        rest = [asyncio.create_task(batcher.submit(slow, 2, [i], one_thread)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(first, *rest)
        await batcher.close()

    asyncio.run(main())
    assert calls == [1, 5]
