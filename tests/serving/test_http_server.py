"""The REST API: TF-Serving-style predict, classify, errors of every kind, auth, batching, hot reload."""

from __future__ import annotations

import asyncio
import base64
import shutil
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from dlpipe.serving.repository import ModelRepository
from dlpipe.serving.server import ServerSettings, create_app


@pytest.fixture(scope="module")
def model_root(trained_run, tmp_path_factory):
    """ROOT/colors/1/ holding the tiny trained run's exported files."""
    _, run = trained_run
    root = tmp_path_factory.mktemp("models")
    version = root / "colors" / "1"
    version.mkdir(parents=True)
    for name in ("model.keras", "labels.txt", "preprocessing.json"):
        shutil.copy(run / name, version / name)
    return root


@pytest.fixture(scope="module")
def images(trained_run):
    root, _ = trained_run
    blue = sorted((root / "blue").iterdir())[0].read_bytes()
    red = sorted((root / "red").iterdir())[0].read_bytes()
    return blue, red


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def client(model_root):
    with TestClient(create_app(ModelRepository(model_root), ServerSettings(max_body_bytes=200_000))) as test_client:
        yield test_client


def test_status_metadata_and_health(client):
    assert client.get("/healthz").json() == {"status": "ok", "models": ["colors"]}
    status = client.get("/v1/models/colors").json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert client.get("/v1/models/colors/metadata").json()["labels"] == ["blue", "red"]


def test_predict_with_instances_and_inputs(client, images):
    blue, red = images
    response = client.post("/v1/models/colors:predict", json={"instances": [b64(blue), {"image_bytes": b64(red)}]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == ["blue", "red"]
    assert abs(sum(predictions[0]["probabilities"]) - 1) < 1e-5
    again = client.post("/v1/models/colors/versions/1:predict", json={"inputs": [b64(blue)]})
    assert again.json()["predictions"][0]["label"] == "blue"


def test_classify_an_uploaded_file(client, images):
    response = client.post("/v1/models/colors:classify", files={"file": ("x.jpg", images[1], "image/jpeg")})
    assert response.status_code == 200 and response.json()["label"] == "red"


@pytest.mark.parametrize(
    "path, kwargs, status, fragment",
    [
        ("/v1/models/colors:predict", {"content": b"{not json"}, 400, "malformed JSON"),
        ("/v1/models/colors:predict", {"json": {"instances": []}}, 400, 'non-empty list "instances"'),
        ("/v1/models/colors:predict", {"json": {"instances": [{"b64": "%%%"}]}}, 400, "not valid base64"),
        ("/v1/models/colors:predict", {"json": {"instances": [b64(b"hello")]}}, 400, "not a JPEG, PNG, GIF or BMP"),
        ("/v1/models/colors:predict", {"json": {"instances": [b64(b"\xff\xd8\xff" + b"0" * 50)]}}, 400, "cannot be decoded"),
        ("/v1/models/colors:predict", {"json": {"instances": ["a sentence"]}}, 400, "takes images"),
        ("/v1/models/nope:predict", {"json": {"instances": ["x"]}}, 404, "model 'nope' not found"),
        ("/v1/models/colors/versions/7:predict", {"json": {"instances": ["x"]}}, 404, "version 7 is not loaded"),
        ("/v1/models/colors:predict", {"content": b"x" * 300_000}, 413, "over the limit"),
        ("/v1/models/colors:classify", {"json": {"nothing": 1}}, 400, '{"text": "..."}'),
    ],
)
def test_bad_requests_get_clear_errors(client, path, kwargs, status, fragment):
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_bearer_token(model_root, images):
    app = create_app(ModelRepository(model_root), ServerSettings(token="s3cret"))
    with TestClient(app) as guarded:
        assert guarded.get("/v1/models/colors").status_code == 401
        assert guarded.get("/v1/models/colors", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert guarded.get("/v1/models/colors", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert guarded.get("/healthz").status_code == 200  # liveness probes need no token


def test_concurrent_requests_share_model_calls(model_root, images):
    app = create_app(ModelRepository(model_root), ServerSettings(max_batch_size=16, max_wait_ms=50))

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            requests = [client.post("/v1/models/colors:predict", json={"instances": [b64(images[i % 2])]}) for i in range(16)]
            return [r.status_code for r in await asyncio.gather(*requests)]

    statuses = asyncio.run(burst())
    assert statuses == [200] * 16
    assert app.state.batcher.items_run == 16
    assert app.state.batcher.batches_run <= 4  # 16 requests in a handful of model calls, not 16


def test_full_queue_answers_503(model_root, images):
    repository = ModelRepository(model_root)
    model = repository.get("colors")
    slow = model.predict
    model.predict = lambda items: (time.sleep(0.3), slow(items))[1]
    app = create_app(repository, ServerSettings(max_batch_size=1, max_wait_ms=0, max_queue=1))

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            requests = [client.post("/v1/models/colors:predict", json={"instances": [b64(images[0])]}) for _ in range(6)]
            return [r.status_code for r in await asyncio.gather(*requests)]

    statuses = asyncio.run(burst())
    assert 503 in statuses and 200 in statuses


def test_new_version_is_picked_up(model_root, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(model_root, root)
    repository = ModelRepository(root)
    assert repository.get("colors").version == 1
    shutil.copytree(root / "colors" / "1", root / "colors" / "2")
    assert repository.refresh() == ["colors:2"]
    assert repository.get("colors").version == 2


def test_metrics_in_prometheus_format(client, images):
    client.post("/v1/models/colors:predict", json={"instances": [b64(images[0])]})
    text = client.get("/metrics").text
    assert "dlpipe_requests_total" in text and 'status="200"' in text and "dlpipe_batches_total" in text
