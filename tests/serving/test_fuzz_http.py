"""Fuzzing the running HTTP server: generated malformed requests never get a 5xx other than 503.

Schemathesis derives the requests from the server's own OpenAPI description (/openapi.json), valid and
invalid ones (wrong types, missing fields, huge and negative numbers, odd path parameters); Hypothesis adds
what a schema cannot describe: bodies that are not JSON or not UTF-8, odd content types and headers.
Both are well-kept property-based testing tools: generating, shrinking and replaying failing cases is
theirs, not ours. Few examples and no deadline keep this to seconds; after each test the server must
still answer a good request.
"""

from __future__ import annotations

import base64
import io

import httpx
import pytest

from assets import require_module

schemathesis = require_module("schemathesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from dlpipe.serving.repository import ModelRepository  # noqa: E402
from dlpipe.serving.server import ServerSettings  # noqa: E402
from live_server import serving  # noqa: E402

FAST = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def good_image() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), (200, 10, 10)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def live_server(tiny_tflite):
    """The app on a real loopback socket (uvicorn in a thread), as `dlpipe serve` runs it: base URL."""
    settings = ServerSettings(max_body_bytes=100_000, max_instances=16, max_queue=8)
    with serving(ModelRepository(tiny_tflite), settings) as (base, _):
        yield base


def assert_alive(base: str) -> None:
    instance = {"b64": base64.b64encode(good_image()).decode()}
    response = httpx.post(f"{base}/v1/models/tiny-tflite0:predict", json={"instances": [instance]}, timeout=30)
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1, response.text


def test_schema_driven_requests_get_no_server_error(live_server):
    # built here rather than with schemathesis.pytest (its fixture-based parametrize fails under pytest 9)
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json")
    cases = st.one_of([operation.ok().as_strategy(generation_mode=mode) for operation in schema.get_all_operations()
                       for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])
    seen: list[int] = []

    @given(case=cases, real_name=st.booleans())
    @settings(FAST, max_examples=24)
    def check(case, real_name):
        if real_name and "name" in (case.path_parameters or {}):
            case.path_parameters["name"] = "tiny-tflite0"  # reach the model, not only the 404
        response = case.call(base_url=live_server, timeout=30)
        seen.append(response.status_code)
        assert response.status_code < 500 or response.status_code == 503, (case.as_curl_command(), response.text)

    check()
    assert any(status == 200 for status in seen) and any(400 <= status < 500 for status in seen)
    assert_alive(live_server)


BODIES = st.one_of(
    st.binary(max_size=300),  # anything, mostly not UTF-8
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=12).map(lambda value: __import__("json").dumps({"instances": value}).encode()),
    st.sampled_from([b'{"instances": [{"b64": "\xff\xfe"}]}', b'{"instances": [1e999]}', b'{"instances": -1}',
                     b'{"instances": [' + b'[' * 5000 + b']' * 5000 + b']}', b'{"text": 123456789012345678901234567890}']),
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=40)  # what HTTP allows


@given(body=BODIES, content_type=st.sampled_from(["application/json", "multipart/form-data", "multipart/form-data; "
                                                  "boundary=x", "text/plain", "image/jpeg"]) | HEADER_TEXT,
       route=st.sampled_from([":predict", ":classify", "/versions/1:predict", "/versions/-99999999999999999999:predict"]),
       extra=st.dictionaries(st.sampled_from(["Authorization", "Accept", "X-Odd", "Transfer-Encoding-Hint"]), HEADER_TEXT,
                             max_size=2))
@FAST
def test_raw_malformed_requests_get_no_server_error(live_server, body, content_type, route, extra):
    response = httpx.post(f"{live_server}/v1/models/tiny-tflite0{route}", content=body,
                          headers={**extra, "content-type": content_type}, timeout=30)
    assert response.status_code < 500 or response.status_code == 503, (route, body[:200], response.text)


def test_deeply_nested_json_is_a_400(live_server):
    # found by the raw fuzzing above: json.loads raised RecursionError, answered as a 500
    response = httpx.post(f"{live_server}/v1/models/tiny-tflite0:predict", content=b"[" * 5000 + b"]" * 5000,
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]


def test_the_server_still_answers_after_the_fuzzing(live_server):
    assert_alive(live_server)
