"""HTTP serving: a TF-Serving-compatible REST API on FastAPI/uvicorn.

Routes:
  GET  /v1/models/NAME                       version status, like TF Serving
  GET  /v1/models/NAME/metadata              labels, preprocessing, task, the artifact served
  POST /v1/models/NAME[/versions/V]:predict  {"instances": [...]} or {"inputs": [...]};
                                             images as {"b64": "..."}, gan seeds as numbers;
                                             answers {"predictions": [...]}
  POST /v1/models/NAME:classify              an uploaded image file (multipart field "file") or
                                             {"text": "..."}; answers the top labels
  GET  /healthz, GET /metrics                liveness; Prometheus text format
  GET  /openapi.json                         the OpenAPI description of these routes
Errors: 400 malformed JSON/inputs, 401 bad or missing bearer token (when one is set), 404 unknown
model, 413 body or instance count over the limit, 503 queue full; before any of these, 431/414/408 for a
request line and headers too large, too many or too slow (serving/http_limits.py, the connection is
closed). Binds to loopback unless told otherwise.

Memory per request is bounded: the body is counted while it streams in and reading stops past the
limit (a chunked upload has no Content-Length to check first), a request holds at most
`max_instances` instances, and they reach the model in batches of at most `max_batch_size`.

CPU use follows TF Serving's advice for CPUs: images are decoded in a pool of `decode_threads`
threads (the cores), off the event loop; each model has `num_batch_threads` batch workers (the
cores), each with its own LiteRT interpreter, and batches only what is already waiting unless its
`max_wait_ms` (0 by default) says to wait for more; a model folder's serving.json overrides these.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from dlpipe.errors import DataError
from dlpipe.models.runtimes import default_threads
from dlpipe.serving.batcher import BatchPolicy, DynamicBatcher, QueueFull
from dlpipe.serving.batching_defaults import BATCH_THREADS, SERVER_MAX_BATCH_SIZE, SERVER_MAX_QUEUE, SERVER_MAX_WAIT_MS
from dlpipe.serving.repository import ModelRepository


@dataclass(frozen=True)
class ServerSettings:
    """Limits and defaults of one server; batching is each model's `BatchPolicy` (see ModelRepository)."""

    # these three: a model's batching unless its serving.json says otherwise (why these: batching_defaults)
    max_batch_size: int = SERVER_MAX_BATCH_SIZE
    max_wait_ms: float = SERVER_MAX_WAIT_MS
    num_batch_threads: int = BATCH_THREADS  # 0: one per core
    max_queue: int = SERVER_MAX_QUEUE
    max_body_bytes: int = 10 * 1024 * 1024
    token: str | None = None
    top_k: int = 3
    max_instances: int = 256
    decode_threads: int = 0  # 0: one per core
    # a request's head, checked as it streams in, before auth and the body (serving/http_limits.py)
    max_header_bytes: int = 16 * 1024  # request line and headers together; over: 431 (414 for the line alone)
    max_headers: int = 100  # over: 431
    header_timeout_s: float = 10.0  # headers not complete by then: 408 and the connection closed

    @property
    def policy(self) -> BatchPolicy:
        return BatchPolicy(self.max_batch_size, self.max_wait_ms, self.num_batch_threads or default_threads())


_INSTANCE = {"oneOf": [{"type": "string", "description": "a sentence, for text models"},
                       {"type": "integer", "minimum": 0, "description": "a seed, for gan models (a generated image)"},
                       {"type": "object", "properties": {"b64": {"type": "string", "format": "byte"}}, "required": ["b64"],
                        "description": "an encoded image (JPEG, PNG, GIF, BMP), base64"}]}
# the request bodies, for the OpenAPI description at /openapi.json (the handlers read the raw body themselves,
# to count its bytes as they arrive, so FastAPI cannot derive these)
PREDICT_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "properties": {"instances": {"type": "array", "minItems": 1, "items": _INSTANCE},
                                     "inputs": {"type": "array", "minItems": 1, "items": _INSTANCE}}}}}}}
CLASSIFY_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                                       "required": ["file"]}}}}}


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message


@dataclass
class _Serving:
    """What the routes of one app share: the models, the batcher, the decoding threads, the counters."""

    repository: ModelRepository
    settings: ServerSettings
    batcher: DynamicBatcher
    decoders: ThreadPoolExecutor
    registry: CollectorRegistry
    requests_total: Counter
    latency: Histogram
    batch_items: Counter

    async def in_decoders(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.decoders, function, *args)

    async def run(self, model: Any, items: list[Any]) -> list[Any]:
        """The model's outputs for prepared items; a large request reaches the model in pieces of one batch."""
        self.batch_items.inc(len(items))
        policy = model.configure(self.settings.policy)
        step = policy.max_batch_size
        try:
            parts = await asyncio.gather(*(self.batcher.submit(model.predict, id(model), items[start:start + step], policy)
                                           for start in range(0, len(items), step)))
        except QueueFull as error:
            raise RequestError(503, f"server busy: {error}; retry shortly") from None
        return [row for part in parts for row in part]


def create_app(repository: ModelRepository, settings: ServerSettings = ServerSettings()) -> FastAPI:
    """The FastAPI application serving every model of `repository`."""
    app = FastAPI(title="dlpipe serving", docs_url=None, redoc_url=None)
    registry = CollectorRegistry()
    serving = _Serving(
        repository, settings,
        DynamicBatcher(settings.max_batch_size, settings.max_wait_ms, settings.max_queue,
                       settings.num_batch_threads or default_threads()),
        ThreadPoolExecutor(settings.decode_threads or default_threads(), thread_name_prefix="dlpipe-decode"),
        registry,
        Counter("dlpipe_requests_total", "requests by route and status", ["route", "status"], registry=registry),
        Histogram("dlpipe_request_seconds", "request latency", ["route"], registry=registry),
        Counter("dlpipe_batched_items_total", "items run through the model", registry=registry))
    app.state.batcher = serving.batcher
    app.state.repository = repository
    for served in repository.models():  # interpreters made now, not on the first request
        served.configure(settings.policy)
    _add_guard(app, serving)
    _add_status_routes(app, serving)
    _add_predict_routes(app, serving)

    @app.on_event("shutdown")
    async def shutdown() -> None:
        await serving.batcher.close()
        serving.decoders.shutdown(wait=False, cancel_futures=True)

    return app


def _add_guard(app: FastAPI, serving: _Serving) -> None:
    """The bearer token, the body-size limit and the request counters, before any route runs."""
    settings = serving.settings

    @app.middleware("http")
    async def guard(request: Request, call_next):
        route = request.url.path.rsplit(":", 1)[-1] if ":" in request.url.path else request.url.path.split("/")[1]
        started = time.perf_counter()
        if settings.token and request.url.path != "/healthz":
            if not _authorized(request, settings.token):
                response = _error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)")
                serving.requests_total.labels(route, "401").inc()
                return response
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            serving.requests_total.labels(route, "413").inc()
            return _error(413, f"request body of {length} bytes is over the limit of {settings.max_body_bytes}")
        response = await call_next(request)
        serving.requests_total.labels(route, str(response.status_code)).inc()
        serving.latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestError)
    async def request_error(_: Request, error: RequestError):
        return _error(error.status, error.message)


def _add_status_routes(app: FastAPI, serving: _Serving) -> None:
    """Health, Prometheus metrics, and each model's status and metadata (TF Serving's REST paths)."""
    repository, settings = serving.repository, serving.settings

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        # liveness needs no token; which models are served is only told to a caller who has it
        if settings.token and not _authorized(request, settings.token):
            return {"status": "ok"}
        return {"status": "ok", "models": repository.names()}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        serving.batch_items.inc(0)
        return PlainTextResponse(generate_latest(serving.registry).decode() + _batcher_metrics(serving.batcher),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/v1/models/{name}")
    async def model_status(name: str) -> dict[str, Any]:
        model = _model(repository, name)
        return {"model_version_status": [{"version": str(model.version), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @app.get("/v1/models/{name}/metadata")
    async def model_metadata(name: str) -> dict[str, Any]:
        return _model(repository, name).metadata()


def _add_predict_routes(app: FastAPI, serving: _Serving) -> None:
    """`:predict` (JSON instances, TF Serving's format, optionally a version) and `:classify` (one file or text)."""
    repository, settings = serving.repository, serving.settings

    @app.post("/v1/models/{name}:predict", openapi_extra=PREDICT_BODY)
    async def predict(name: str, request: Request) -> dict[str, Any]:
        return await _predict(name, None, request)

    @app.post("/v1/models/{name}/versions/{version}:predict", openapi_extra=PREDICT_BODY)
    async def predict_version(name: str, version: int, request: Request) -> dict[str, Any]:
        return await _predict(name, version, request)

    async def _predict(name: str, version: int | None, request: Request) -> dict[str, Any]:
        model = _model(repository, name, version)
        body = await _json_body(request, settings.max_body_bytes)
        instances = body.get("instances", body.get("inputs")) if isinstance(body, dict) else None
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, 'expected a JSON object with a non-empty list "instances" (or "inputs")')
        if len(instances) > settings.max_instances:
            raise RequestError(413, f"{len(instances)} instances in one request; the limit is {settings.max_instances} "
                                    "(split the request, or start the server with a higher --max-instances)")
        decoded = [_decode_instance(instance, index) for index, instance in enumerate(instances)]
        # image decoding is CPU work: keep it off the event loop so other requests are accepted meanwhile
        items = await asyncio.gather(*(serving.in_decoders(_prepare, model, item, index)
                                       for index, item in enumerate(decoded)))
        probabilities = await serving.run(model, items)
        return {"predictions": [model.describe(row, settings.top_k) for row in probabilities],
                "model_version": str(model.version)}

    @app.post("/v1/models/{name}:classify", openapi_extra=CLASSIFY_BODY)
    async def classify(name: str, request: Request) -> dict[str, Any]:
        model = _model(repository, name)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            await _read_body(request, settings.max_body_bytes)  # bounded; the form parser then reads it from memory
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise RequestError(400, 'send the image as a multipart file field named "file"')
            item: Any = await upload.read()
        else:
            body = await _json_body(request, settings.max_body_bytes)
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                raise RequestError(400, 'send {"text": "..."} as JSON, or an image as multipart field "file"')
            item = body["text"]
        prepared = await serving.in_decoders(_prepare, model, item, 0)
        probabilities = await serving.run(model, [prepared])
        return {**model.describe(probabilities[0], settings.top_k), "model_version": str(model.version)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _model(repository: ModelRepository, name: str, version: int | None = None):
    try:
        return repository.get(name, version)
    except KeyError as error:
        raise RequestError(404, str(error.args[0])) from None


def _authorized(request: Request, token: str) -> bool:
    """RFC 6750: `Authorization: Bearer TOKEN`, the scheme name in any case."""
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(sent.strip().encode(), token.encode())


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, counted while it streams in: reading stops as soon as it passes `limit`."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    request._body = raw  # Starlette's own cache: request.body() and request.form() read this, not the socket
    return raw


async def _json_body(request: Request, limit: int) -> Any:
    raw = await _read_body(request, limit)
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(400, f"malformed JSON: {error}") from None
    except RecursionError:  # '[' * 5000 is a 5 kB body that Python's parser cannot nest
        raise RequestError(400, "malformed JSON: nested too deeply") from None


def _decode_instance(instance: Any, index: int) -> Any:
    """TF Serving's conventions: {"b64": ...} (also nested as {"image_bytes": {"b64": ...}}) is binary."""
    if isinstance(instance, dict) and len(instance) == 1 and isinstance(next(iter(instance.values())), dict):
        instance = next(iter(instance.values()))
    if isinstance(instance, dict):
        if "b64" not in instance:
            raise RequestError(400, f'instances[{index}]: expected {{"b64": "..."}} or a string')
        try:
            return base64.b64decode(instance["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise RequestError(400, f"instances[{index}]: b64 is not valid base64") from None
    return instance


def _prepare(model: Any, item: Any, index: int) -> Any:
    try:
        return model.prepare(item)
    except DataError as error:
        raise RequestError(400, f"instances[{index}]: {error.reason if error.path == 'instance' else error}") from None


def _batcher_metrics(batcher: DynamicBatcher) -> str:
    return ("# HELP dlpipe_batches_total model calls made by the batcher\n# TYPE dlpipe_batches_total counter\n"
            f"dlpipe_batches_total {batcher.batches_run}\n")
