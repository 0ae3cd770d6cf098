"""The HTTP service: a FastAPI app over one `TopicClassifier`, with concurrent requests
micro-batched into one model call.

    POST /predict   {"texts": [...]} or {"items": [{"id": ..., "text": ...}]}
    GET  /health    200 once the model is loaded, 503 before (or if loading failed)
    GET  /metadata  labels, thresholds, segmenter, base model, versions
    GET  /metrics   Prometheus text format

`vitopic serve` runs it under uvicorn; `create_app` is the app for any ASGI server or Ray Serve.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from starlette.exceptions import HTTPException

from vitopic import __version__
from vitopic.errors import one_line
from vitopic.options import Backend, Split
from vitopic.text import check_unicode

if TYPE_CHECKING:
    from vitopic.predict import Prediction, TopicClassifier

logger = logging.getLogger("vitopic.serving")
REQUEST_ID = "X-Request-ID"
_ROUTES = ("/predict", "/health", "/metadata", "/metrics")


@dataclass(frozen=True)
class Limits:
    """What one request may hold, and how requests are batched together."""

    max_batch: int = 64  # texts per model call, summed over the requests it serves
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_texts: int = 256  # texts in one request
    max_body_bytes: int = 2 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_texts", "max_body_bytes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {self.max_wait_ms!r}")


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictStr | StrictInt | None = None
    text: StrictStr


class PredictRequest(BaseModel):
    """Exactly one of `texts` (plain strings) or `items` (texts with ids)."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] | None = Field(default=None, min_length=1)
    items: list[Item] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.texts is None) == (self.items is None):
            raise ValueError("give exactly one of 'texts' or 'items'")
        return self

    def all_texts(self) -> list[str]:
        return self.texts if self.texts is not None else [item.text for item in self.items or []]


class ModelError(RuntimeError):
    """The model failed on a batch that had passed validation (a server-side fault)."""


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future


@dataclass
class MicroBatcher:
    """Queue requests and run them together: a batch closes at `max_batch` texts or after
    `max_wait_ms` from its first request. One model call at a time, off the event loop."""

    predict: Callable[[list[str]], list[Prediction]]
    limits: Limits
    on_batch: Callable[[int], None] = lambda size: None
    _queue: asyncio.Queue[_Job] = field(default_factory=asyncio.Queue)
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="vitopic-predict")
    )

    async def submit(self, texts: list[str]) -> list[Prediction]:
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(texts, future))
        return await future

    async def run(self) -> None:
        """Serve the queue until cancelled."""
        loop = asyncio.get_running_loop()
        carry: _Job | None = None
        while True:
            jobs = [carry or await self._queue.get()]
            carry = None
            size = len(jobs[0].texts)
            deadline = loop.time() + self.limits.max_wait_ms / 1000
            while size < self.limits.max_batch:
                try:
                    job = (
                        self._queue.get_nowait()
                        if self._queue.qsize()
                        else await asyncio.wait_for(self._queue.get(), max(deadline - loop.time(), 0))
                    )
                except TimeoutError:
                    break
                if size + len(job.texts) > self.limits.max_batch:
                    carry = job  # it opens the next batch
                    break
                jobs.append(job)
                size += len(job.texts)
            await self._run(jobs)

    async def _run(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        size = len(texts)
        self.on_batch(size)
        try:
            predictions = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.predict, texts
            )
        except Exception as err:  # one log line per failed batch, with the traceback
            logger.exception("model call failed on a batch of %d texts from %d requests", size, len(jobs))
            outcome: Any = ModelError(f"{type(err).__name__}: {err}")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(outcome)
            return
        start = 0
        for job in jobs:
            if not job.future.done():  # a client that went away has cancelled its future
                job.future.set_result(predictions[start : start + len(job.texts)])
            start += len(job.texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Metrics:
    """The Prometheus series, in a registry of the app's own (several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vitopic_requests",
            "HTTP requests by route and status code",
            ["route", "status"],
            registry=self.registry,
        )
        self.inputs = Counter("vitopic_inputs", "texts labelled", registry=self.registry)
        self.latency = Histogram(
            "vitopic_request_latency_seconds",
            "time from request to response, by route",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "vitopic_batch_size",
            "texts per model call",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.ready = Gauge("vitopic_model_ready", "1 once the model is loaded", registry=self.registry)


class _Guard:
    """ASGI middleware: a request id for every request, the body-size limit, and the request
    metrics (counted here, so 4xx answers from validation are counted too)."""

    def __init__(self, app: Any, metrics: _Metrics, max_body_bytes: int):
        self.app, self.metrics, self.limit = app, metrics, max_body_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(REQUEST_ID.lower().encode(), b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        route = scope["path"] if scope["path"] in _ROUTES else "other"
        started, status = time.perf_counter(), 500
        received = 0
        declared = headers.get(b"content-length", b"")
        too_large = f"the request body is over the {self.limit:,}-byte limit"

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(413, too_large)
            return message

        async def tagged_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID.encode(), request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            if declared.isdigit() and int(declared) > self.limit:
                await _error(413, too_large, request_id)(scope, receive, tagged_send)
            else:
                await self.app(scope, limited_receive, tagged_send)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def _error(status: int, message: str, request_id: str) -> JSONResponse:
    return JSONResponse(
        {"error": message, "request_id": request_id},
        status_code=status,
        headers={"Retry-After": "1"} if status == 503 else None,
    )


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "")


def _one_line(err: RequestValidationError) -> tuple[int, str]:
    """The first problem, as `where: what` (400 when the body is not JSON at all)."""
    first = err.errors()[0]
    if first.get("type") == "json_invalid" or (
        isinstance(first.get("input"), bytes | str) and tuple(first.get("loc", ())) == ("body",)
    ):
        return 400, "the request body is not valid JSON (send it as application/json)"
    if tuple(first.get("loc", ())) == ("body",) and first.get("type") != "value_error":
        return 422, "the request body must be a JSON object with 'texts' or 'items'"
    where = ""
    for part in first.get("loc", ())[1:]:  # drop the leading "body"
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return 422, f"{where}: {message}" if where else message


class _Model:
    """The classifier, loaded in a thread so /health can answer while it loads."""

    def __init__(self, source: str | TopicClassifier, options: dict[str, Any]):
        self.source, self.options = source, options
        self.classifier: TopicClassifier | None = None
        self.error: str | None = None

    def load(self) -> None:
        try:
            if isinstance(self.source, str):
                from vitopic.predict import TopicClassifier

                self.classifier = TopicClassifier.from_pretrained(self.source, **self.options)
            else:
                self.classifier = self.source
        except Exception as err:
            self.error = one_line(err)
            logger.error("could not load the model: %s", self.error)


def create_app(
    model: str | TopicClassifier,
    *,
    limits: Limits | None = None,
    split: Split = "sentence",
    threshold: float | None = None,
    revision: str | None = None,
    device: str | None = None,
    backend: Backend = "torch",
    on_load_failure: Callable[[str], None] | None = None,
) -> FastAPI:
    """The service over `model`: a checkpoint dir or Hub id (loaded at startup, in the
    background) or a `TopicClassifier` already loaded. `on_load_failure(reason)` is called if
    loading fails (`vitopic serve` exits then); /health reports it either way."""
    limits = limits or Limits()
    metrics = _Metrics()
    state = _Model(model, {"revision": revision, "device": device, "backend": backend})

    def predict(texts: list[str]) -> list[Prediction]:
        assert state.classifier is not None
        return state.classifier.predict(texts, batch_size=limits.max_batch, split=split, threshold=threshold)

    batcher = MicroBatcher(predict, limits, on_batch=metrics.batch_size.observe)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.get_running_loop().run_in_executor(None, state.load)
        loading.add_done_callback(lambda _: _loaded())
        worker = asyncio.create_task(batcher.run())
        try:
            yield
        finally:
            worker.cancel()
            batcher.close()

    def _loaded() -> None:
        if state.classifier is not None:
            metrics.ready.set(1)
        elif on_load_failure is not None:
            on_load_failure(state.error or "unknown error")

    app = FastAPI(
        title="vitopic",
        version=__version__,
        lifespan=lifespan,
        summary="Topic labels for Vietnamese news sentences",
    )
    app.add_middleware(_Guard, metrics=metrics, max_body_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        status, message = _one_line(err)
        return _error(status, message, _request_id(request))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail), _request_id(request))

    @app.post("/predict")
    async def predict_route(body: PredictRequest, request: Request) -> JSONResponse:
        request_id = _request_id(request)
        if state.classifier is None:
            return _error(
                503,
                "the model is loading" if state.error is None else f"the model failed to load: {state.error}",
                request_id,
            )
        texts = body.all_texts()
        if len(texts) > limits.max_texts:
            return _error(
                413, f"{len(texts)} texts in one request; the limit is {limits.max_texts}", request_id
            )
        try:
            check_unicode(texts)
        except ValueError as err:
            return _error(422, str(err), request_id)
        try:
            predictions = await batcher.submit(texts)
        except ModelError:
            return _error(
                500,
                "the model failed on this request; the server log has the details under its request id",
                request_id,
            )
        metrics.inputs.inc(len(texts))
        ids = [item.id for item in body.items] if body.items is not None else None
        rows = []
        for i, p in enumerate(predictions):
            row: dict[str, Any] = {"labels": p.labels, "scores": p.scores, "empty": p.empty}
            if ids is not None and ids[i] is not None:
                row["id"] = ids[i]
            rows.append(row)
        return JSONResponse({"predictions": rows, "request_id": request_id})

    @app.get("/health")
    async def health() -> JSONResponse:
        if state.classifier is not None:
            return JSONResponse({"status": "ready"})
        status = "loading" if state.error is None else "failed"
        return JSONResponse({"status": status, "error": state.error}, status_code=503)

    @app.get("/metadata")
    async def metadata(request: Request) -> JSONResponse:
        if state.classifier is None:
            return _error(503, "the model is not loaded", _request_id(request))
        meta = state.classifier.metadata
        return JSONResponse(
            {
                "labels": meta.labels,
                "mode": meta.mode,
                "thresholds": meta.thresholds,
                "segmenter": state.classifier.segmenter,
                "max_length": meta.max_length,
                "base_model": meta.base_model,
                "base_revision": meta.base_revision,
                "trained_with_vitopic": meta.vitopic_version,
                "vitopic_version": __version__,
                "backend": backend,
                "split": split,
                "threshold_override": threshold,
                "limits": {
                    "max_batch": limits.max_batch,
                    "max_wait_ms": limits.max_wait_ms,
                    "max_texts": limits.max_texts,
                    "max_body_bytes": limits.max_body_bytes,
                },
            }
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
