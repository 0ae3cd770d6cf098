"""The HTTP service: a FastAPI app over one `TopicClassifier`, with concurrent requests
micro-batched into one model call.

    POST /predict   {"texts": [...]} or {"items": [{"id": ..., "text": ...}]}
    GET  /health    200 once the model is loaded, 503 before (or if loading failed)
    GET  /metadata  labels, thresholds by label, segmenter, base model, versions
    GET  /metrics   Prometheus text format

A line is logged (logger `vitopic.serving`, INFO) when the model is ready and for every request:
method, path, status, latency and request id. `vitopic serve` runs it under uvicorn
(`server_config`: header and keep-alive timeouts, and those lines on stderr);
`create_app` is the app for any ASGI server or Ray Serve. Work per request is bounded (`Limits`),
smaller requests are served first, and a server bound to loopback answers only loopback Host
names unless told otherwise (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
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
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator
from starlette.exceptions import HTTPException

from vitopic import __version__
from vitopic.errors import clip, one_line
from vitopic.options import Backend, Split
from vitopic.prediction_io import printable
from vitopic.text import check_unicode

if TYPE_CHECKING:
    from vitopic.predict import Prediction, TopicClassifier

logger = logging.getLogger("vitopic.serving")
REQUEST_ID = "X-Request-ID"
_ROUTES = ("/predict", "/health", "/metadata", "/metrics")
KEEP_ALIVE_S = 5  # how long an idle connection stays open between requests
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Limits:
    """What one request may hold, and how requests are batched together."""

    max_batch: int = 64  # texts per model call, summed over the requests it serves
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_texts: int = 256  # texts in one request
    max_body_bytes: int = 2 * 1024 * 1024
    max_text_chars: int = 20_000  # characters in one text (413 above)
    max_request_chars: int = 200_000  # characters in one request, all texts together (413 above)
    max_batch_chars: int = 20_000  # characters per model call: a bigger request takes several
    header_timeout_s: float = 10.0  # to receive a request's headers (slow ones: connection closed)
    body_timeout_s: float = 30.0  # to receive a request's body, from its headers (408 after)

    def __post_init__(self) -> None:
        for name in (
            "max_batch",
            "max_texts",
            "max_body_bytes",
            "max_text_chars",
            "max_request_chars",
            "max_batch_chars",
        ):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {self.max_wait_ms!r}")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not 0 < getattr(self, name) <= 3600:
                raise ValueError(f"{name} must be in (0, 3600] seconds, got {getattr(self, name)!r}")


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: StrictStr | StrictInt | None = None
    text: StrictStr

    @field_validator("id", mode="before")
    @classmethod
    def _string_or_integer(cls, value: Any) -> Any:
        """One message for every other type (1.0, true, [1]), not one per union branch."""
        if (
            value is None
            or isinstance(value, str)
            or (isinstance(value, int) and not isinstance(value, bool))
        ):
            return value
        raise ValueError(f"must be a string or an integer, got {clip(repr(value))}")


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


@dataclass(order=True)
class _Job:
    """Part of one request's texts; the queue serves the smallest request first, parts in order."""

    rank: tuple[int, int]  # (the request's characters, arrival)
    texts: list[str] = field(compare=False)
    request_id: str = field(compare=False)
    future: asyncio.Future = field(compare=False)


@dataclass
class MicroBatcher:
    """Queue requests and run them together, one model call at a time, off the event loop.

    A request is cut into parts of at most `max_batch` texts and `max_batch_chars` characters (a
    longer text alone), so no model call is long; waiting parts are served smallest request
    first, so a small request never waits behind all of a huge one. A batch closes at those limits
    or `max_wait_ms` after its first part. When a batch fails, its parts are retried one by one:
    only the request that makes the model fail gets the error.
    """

    predict: Callable[[list[str]], list[Prediction]]
    limits: Limits
    on_batch: Callable[[int], None] = lambda size: None
    _queue: asyncio.PriorityQueue[_Job] = field(default_factory=asyncio.PriorityQueue)
    _arrivals: itertools.count = field(default_factory=itertools.count)
    _executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="vitopic-predict")
    )

    async def submit(self, texts: list[str], request_id: str = "") -> list[Prediction]:
        loop = asyncio.get_running_loop()
        chars = sum(map(len, texts))
        jobs = []
        for part in self._parts(texts):
            jobs.append(_Job((chars, next(self._arrivals)), part, request_id, loop.create_future()))
            self._queue.put_nowait(jobs[-1])
        results = await asyncio.gather(*(job.future for job in jobs))
        return [p for result in results for p in result]

    def _parts(self, texts: list[str]) -> list[list[str]]:
        parts: list[list[str]] = [[]]
        chars = 0
        for text in texts:
            if parts[-1] and (
                len(parts[-1]) == self.limits.max_batch or chars + len(text) > self.limits.max_batch_chars
            ):
                parts.append([])
                chars = 0
            parts[-1].append(text)
            chars += len(text)
        return parts

    async def run(self) -> None:
        """Serve the queue until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            size, chars = len(jobs[0].texts), sum(map(len, jobs[0].texts))
            deadline = loop.time() + self.limits.max_wait_ms / 1000
            while size < self.limits.max_batch and chars < self.limits.max_batch_chars:
                try:
                    job = (
                        self._queue.get_nowait()
                        if self._queue.qsize()
                        else await asyncio.wait_for(self._queue.get(), max(deadline - loop.time(), 0))
                    )
                except TimeoutError:
                    break
                job_chars = sum(map(len, job.texts))
                if (
                    size + len(job.texts) > self.limits.max_batch
                    or chars + job_chars > self.limits.max_batch_chars
                ):
                    self._queue.put_nowait(job)  # it waits for the next batch, in its rank
                    break
                jobs.append(job)
                size, chars = size + len(job.texts), chars + job_chars
            await self._run(jobs)

    async def _run(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        self.on_batch(len(texts))
        try:
            predictions = await asyncio.get_running_loop().run_in_executor(
                self._executor, self.predict, texts
            )
        except Exception as err:
            ids = ", ".join(dict.fromkeys(job.request_id for job in jobs))
            if len(jobs) > 1:
                logger.warning("model call failed on a batch of requests %s; retrying them one by one", ids)
                for job in jobs:
                    await self._run([job])
                return
            # one log line per failing request, with the traceback
            logger.exception("model call failed on request %s (%d texts)", ids, len(texts))
            if not jobs[0].future.done():
                jobs[0].future.set_exception(ModelError(f"{type(err).__name__}: {err}"))
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


def _host_name(header: bytes) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    host = header.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def allowed_hosts(bind: str, extra: Sequence[str] = ()) -> frozenset[str] | None:
    """The Host names a server bound to `bind` answers: loopback names (and `extra`) when bound to
    loopback, which keeps pages on other sites from reaching it by DNS rebinding; `extra` only
    when given for another address; None (any) otherwise. "*" in `extra` allows any."""
    if "*" in extra:
        return None
    names = frozenset(_host_name(name.encode()) for name in extra)
    try:
        loopback = bind == "localhost" or ipaddress.ip_address(bind).is_loopback
    except ValueError:  # a host name
        loopback = False
    return names | frozenset(LOOPBACK_NAMES) if loopback else names or None


class _Guard:
    """ASGI middleware: a request id for every request, the Host check, the body-size limit and
    body-read deadline, and the request metrics (counted here, so 4xx answers are counted too)."""

    def __init__(self, app: Any, metrics: _Metrics, limits: Limits, hosts: frozenset[str] | None):
        self.app, self.metrics, self.limit, self.hosts = app, metrics, limits.max_body_bytes, hosts
        self.body_timeout = limits.body_timeout_s

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
        deadline = asyncio.get_running_loop().time() + self.body_timeout
        body_done = False

        async def limited_receive() -> dict:
            nonlocal received, body_done
            if body_done:  # after the body: only a disconnect can come, whenever it does
                return await receive()
            try:
                message = await asyncio.wait_for(
                    receive(), max(deadline - asyncio.get_running_loop().time(), 0)
                )
            except TimeoutError:
                raise HTTPException(
                    408, f"the request body did not arrive within {self.body_timeout:g} s"
                ) from None
            received += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
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

        host = _host_name(headers.get(b"host", b""))
        try:
            if self.hosts is not None and host not in self.hosts:
                await _error(
                    400,
                    f"Host {host!r} is not served here (DNS rebinding?); "
                    "start the server with --allowed-hosts to allow it",
                    request_id,
                )(scope, receive, tagged_send)
            elif declared.isdigit() and int(declared) > self.limit:
                await _error(413, too_large, request_id)(scope, receive, tagged_send)
            else:
                await self.app(scope, limited_receive, tagged_send)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            logger.info(
                "%s %s %d %.1f ms request_id=%s",
                scope["method"],
                printable(scope["path"]),
                status,
                elapsed * 1000,
                printable(request_id),
            )


def _error(status: int, message: str, request_id: str) -> JSONResponse:
    """The one-line JSON error; the connection is closed after a body that was not read (408, 413)."""
    headers = {503: {"Retry-After": "1"}, 408: {"Connection": "close"}, 413: {"Connection": "close"}}
    return JSONResponse(
        {"error": message, "request_id": request_id}, status_code=status, headers=headers.get(status)
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
    if first.get("type") == "extra_forbidden" and len(first.get("loc", ())) == 2:  # {"text": ...}
        message = 'unknown field; send {"texts": ["...", ...]} or {"items": [{"id": ..., "text": "..."}]}'
    return 422, f"{where}: {message}" if where else message


def _too_much(texts: list[str], items: bool, limits: Limits) -> str | None:
    """Why a request holds more work than one may (413), or None."""
    if len(texts) > limits.max_texts:
        return f"{len(texts)} texts in one request; the limit is {limits.max_texts}"
    for i, text in enumerate(texts):
        if len(text) > limits.max_text_chars:
            where = f"items[{i}].text" if items else f"texts[{i}]"
            return f"{where}: {len(text):,} characters; the limit is {limits.max_text_chars:,} per text"
    if (total := sum(map(len, texts))) > limits.max_request_chars:
        return f"{total:,} characters in one request; the limit is {limits.max_request_chars:,}"
    return None


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
    backend: Backend = "auto",
    on_load_failure: Callable[[str], None] | None = None,
    hosts: frozenset[str] | None = None,
    docs: bool = False,
    url: str | None = None,
) -> FastAPI:
    """The service over `model`: a checkpoint dir or Hub id (loaded at startup, in the
    background) or a `TopicClassifier` already loaded. `on_load_failure(reason)` is called if
    loading fails (`vitopic serve` exits then); /health reports it either way. `hosts`: the Host
    names answered (None: any; see `allowed_hosts`). `docs`: serve /docs and /openapi.json.
    `url`: where the app is served, for the line logged when the model is ready."""
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
            logger.info(
                "model ready%s: %s, backend %s on %s, labels %s",
                f" at {url}" if url else "",
                model if isinstance(model, str) else "a TopicClassifier object",
                state.classifier.backend,
                state.classifier.device,
                ", ".join(state.classifier.labels),
            )
        elif on_load_failure is not None:
            on_load_failure(state.error or "unknown error")

    app = FastAPI(
        title="vitopic",
        version=__version__,
        lifespan=lifespan,
        summary="Topic labels for Vietnamese news sentences",
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.add_middleware(_Guard, metrics=metrics, limits=limits, hosts=hosts)

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
        if (too_much := _too_much(texts, body.items is not None, limits)) is not None:
            return _error(413, too_much, request_id)
        try:
            check_unicode(texts)
        except ValueError as err:
            return _error(422, str(err), request_id)
        try:
            predictions = await batcher.submit(texts, request_id)
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
            row = p.to_row()
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
                "thresholds": dict(zip(meta.labels, meta.thresholds, strict=True))
                if meta.head.uses_thresholds
                else {},
                "segmenter": state.classifier.segmenter,
                "max_length": meta.max_length,
                "base_model": meta.base_model,
                "base_revision": meta.base_revision,
                "trained_with_vitopic": meta.vitopic_version,
                "vitopic_version": __version__,
                "backend": state.classifier.backend,
                "split": split,
                "threshold_override": threshold,
                "limits": asdict(limits),
            }
        )

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


class _HeaderDeadline:
    """Mixed into uvicorn's HTTP protocol: a connection that has not sent a request's headers
    within `header_timeout` seconds (from its opening, or from the previous response) is closed.
    uvicorn has no such limit: a client trickling header bytes (slowloris) would hold it forever."""

    header_timeout: float = 10.0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._await_headers()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _await_headers(self) -> None:
        if timer := getattr(self, "_header_timer", None):
            timer.cancel()
        cycle = self.cycle  # type: ignore[attr-defined]
        self._header_timer = self.loop.call_later(  # type: ignore[attr-defined]
            self.header_timeout, self._expire, cycle
        )

    def _expire(self, cycle: Any) -> None:
        current = self.cycle  # type: ignore[attr-defined]
        if current is cycle and (current is None or current.response_complete):
            self.transport.close()  # type: ignore[attr-defined]


def base_url(host: str, port: int) -> str:
    """The URL of a server bound to `host` and `port` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def server_config(app: FastAPI, limits: Limits, log_level: str = "info", **options: Any) -> Any:
    """A `uvicorn.Config` for `app`: `options` (host, port, ...) with vitopic's timeouts, and
    vitopic's log lines (ready, one per request) on stderr at `log_level` beside uvicorn's, in
    place of uvicorn's access log."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # uvicorn without httptools: its h11 protocol
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    protocol = type("VitopicHTTP", (_HeaderDeadline, base), {"header_timeout": limits.header_timeout_s})
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"][logger.name] = {
        "handlers": ["default"],
        "level": log_level.upper(),
        "propagate": False,
    }
    return uvicorn.Config(
        app,
        http=protocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        log_config=log_config,
        log_level=log_level,
        access_log=False,
        **options,
    )
