"""Hostile input cannot take dlpipe down: bounded work per request and per image, any file name, clean retries.

Memory is checked by bounding the work done (instances reaching the model, pixels decoded), not by timing.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image

from conftest import TINY_SETS
from dlpipe.pipelines.cli import main
from dlpipe.serving.repository import ModelRepository
from dlpipe.serving.server import ServerSettings, create_app


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def bomb_png(tmp_path_factory) -> Path:
    """A small PNG file of 10000 x 10000 pixels (100 megapixels): about 12 kB on disk, 300 MB decoded as RGB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (10000, 10000)).save(path, optimize=True)
    assert path.stat().st_size < 100_000
    return path


@pytest.fixture(scope="module")
def served(trained_run):
    _, run = trained_run
    repository = ModelRepository(run, "keras")
    model = repository.models()[0]
    calls: list[int] = []
    original = model.predict

    def counting(items):
        calls.append(len(items))
        return original(items)

    model.predict = counting  # the bound on work: how many inputs ever reach the model in one call
    settings = ServerSettings(max_batch_size=8, max_wait_ms=1, max_instances=64, max_body_bytes=2_000_000, token="s3cret")
    with TestClient(create_app(repository, settings)) as client:
        yield client, calls, model.name


def auth(scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} s3cret"}


def test_ten_thousand_instances_are_refused_before_any_work(served, trained_run):
    client, calls, name = served
    root, _ = trained_run
    tiny = b64(sorted((root / "blue").iterdir())[0].read_bytes())
    calls.clear()
    response = client.post(f"/v1/models/{name}:predict", json={"instances": [{"b64": "AAAA"}] * 10_000}, headers=auth())
    assert response.status_code == 413 and "10000 instances in one request; the limit is 64" in response.json()["error"]
    assert calls == []
    # within the limit, a large request reaches the model in pieces of at most max_batch_size
    response = client.post(f"/v1/models/{name}:predict", json={"instances": [tiny] * 40}, headers=auth())
    assert response.status_code == 200 and len(response.json()["predictions"]) == 40
    assert sum(calls) == 40 and max(calls) <= 8


def test_a_decompression_bomb_is_refused_from_its_header(served, bomb_png):
    client, calls, name = served
    calls.clear()
    response = client.post(f"/v1/models/{name}:predict", json={"instances": [b64(bomb_png.read_bytes())]}, headers=auth())
    assert response.status_code == 400
    assert "10000x10000 = 100,000,000 pixels is over the limit of 50,000,000" in response.json()["error"]
    assert "function_node" not in response.text and calls == []


def test_a_chunked_body_is_counted_as_it_arrives(served):
    client, _, name = served

    def body():
        for _ in range(100):  # 6.4 MB with no Content-Length, against a 2 MB limit
            yield b" " * 64_000

    response = client.post(f"/v1/models/{name}:predict", content=body(), headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 413 and "over the limit of 2000000 bytes" in response.json()["error"]


def test_bearer_scheme_is_case_insensitive_and_health_hides_names(served):
    client, _, name = served
    assert client.get(f"/v1/models/{name}", headers=auth("bearer")).status_code == 200
    assert client.get(f"/v1/models/{name}", headers=auth("BEARER")).status_code == 200
    assert client.get(f"/v1/models/{name}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/healthz", headers=auth()).json() == {"status": "ok", "models": [name]}


def test_predict_gives_rows_for_bombs_and_undecodable_names(trained_run, bomb_png, tmp_path):
    root, run = trained_run
    photos = tmp_path / "photos"
    photos.mkdir()
    good = sorted((root / "red").iterdir())[0]
    shutil.copy(good, photos / "plain.jpg")
    odd = os.fsdecode(bytes(photos) + b"/caf\xe9-\xff.jpg")  # not valid UTF-8
    shutil.copy(good, odd)
    shutil.copy(bomb_png, photos / "bomb.png")
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(main, ["predict", str(run), str(photos), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {row["input"]: row for row in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert rows[f"{photos}/caf\\xe9-\\xff.jpg"]["label"] == "red" and rows[f"{photos}/plain.jpg"]["label"] == "red"
    assert "over the limit" in rows[f"{photos}/bomb.png"]["error"]
    again = CliRunner().invoke(main, ["predict", str(run), str(photos), "--out", str(out)], catch_exceptions=False)
    assert "0 classified, 0 failed, 3 already done" in again.output  # the escaped names resume too


def test_a_run_trains_past_bombs_and_odd_names_and_a_failed_start_can_be_retried(color_folder, bomb_png, tmp_path):
    shutil.copy(bomb_png, color_folder / "red" / "bomb.png")
    shutil.copy(next((color_folder / "blue").iterdir()), os.fsdecode(bytes(color_folder / "blue") + b"/\xff\xfe.png"))
    out = tmp_path / "run"
    sets = [*TINY_SETS, "train.epochs=2", "export.formats=[keras]"]
    failed = CliRunner().invoke(main, ["run", "image-classify", "--data", str(tmp_path / "typo"), "--out", str(out),
                                       *[f"--set={s}" for s in sets]])
    assert failed.exit_code == 2 and "folder does not exist" in failed.output
    result = CliRunner().invoke(main, ["run", "image-classify", "--data", str(color_folder), "--out", str(out),
                                       *[f"--set={s}" for s in sets]])
    assert result.exit_code == 0, result.output
    assert "stopped before training; starting it again" in result.output
    report = json.loads((out / "report.json").read_text())
    skipped = {item["path"]: item["reason"] for item in report["data"]["skipped"]}
    assert "over the limit" in skipped[str(color_folder / "red" / "bomb.png")]
    assert report["data"]["train_images"] + report["data"]["val_images"] == 49  # 48 + the odd name, trained on
