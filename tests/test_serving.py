"""`vitopic serve`: a real server process on 127.0.0.1 and a real HTTP client (httpx); the
micro-batcher and failure paths in-process through FastAPI's TestClient."""

import asyncio
import json
import random
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from helpers import DATA, HANG, VITOPIC, run_cli
from prometheus_client.parser import text_string_to_metric_families

from vitopic.serving import Limits, MicroBatcher, ModelError, allowed_hosts, create_app

ARTICLE = (
    "Hội nghị thượng đỉnh NATO khai mạc tại Washington. " * 30
    + "Mỹ công bố gói viện trợ quân sự mới cho Ukraine."
)


def sample_texts(n: int, seed: int = 0) -> list[str]:
    lines = (DATA / "test.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line)["text"] for line in random.Random(seed).sample(lines, n)]


def same(served: dict, expected) -> bool:
    return (
        served["labels"] == expected.labels
        and served["empty"] == expected.empty
        and all(abs(served["scores"][k] - v) < 1e-5 for k, v in expected.scores.items())
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def counters(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, from a Prometheus text page."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    """What the module's server process prints (its log lines)."""
    return tmp_path_factory.mktemp("serve") / "server.log"


@pytest.fixture(scope="module")
def server(trained_dir, server_log):
    """`vitopic serve` in its own process, ready (GET /health is 200), logging to `server_log`."""
    port = free_port()
    with server_log.open("w") as log:
        proc = subprocess.Popen(
            [
                *VITOPIC,
                "serve",
                "--model",
                str(trained_dir),
                "--port",
                str(port),
                "--max-texts",
                "50",
                "--max-body-bytes",
                "20000",
                "--max-text-chars",
                "12000",
                "--max-request-chars",
                "15000",
                "--header-timeout",
                "1",
                "--body-timeout",
                "1",
                "--allowed-hosts",
                "api.example",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + HANG
    while True:
        assert proc.poll() is None, server_log.read_text("utf-8")
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.2)
    yield url
    proc.terminate()  # uvicorn shuts down gracefully, then re-raises the signal
    assert proc.wait(30) in (0, -signal.SIGTERM)


@pytest.mark.slow
def test_served_predictions_equal_predict(server, classifier):
    texts = [*sample_texts(20), "", "<p></p>", ARTICLE]
    got = httpx.post(f"{server}/predict", json={"texts": texts}).json()["predictions"]
    assert len(got) == len(texts)
    assert all(same(g, e) for g, e in zip(got, classifier.predict(texts), strict=True))
    items = [{"id": 7, "text": texts[0]}, {"text": texts[1]}, {"id": "b", "text": ""}]
    got = httpx.post(f"{server}/predict", json={"items": items}).json()["predictions"]
    assert [g.get("id") for g in got] == [7, None, "b"]
    assert all(same(g, e) for g, e in zip(got, classifier.predict([*texts[:2], ""]), strict=True))
    meta = httpx.get(f"{server}/metadata").json()
    assert meta["labels"] == classifier.labels
    assert meta["thresholds"] == dict(zip(classifier.labels, classifier.metadata.thresholds, strict=True))
    assert meta["segmenter"] == classifier.segmenter and meta["limits"]["max_texts"] == 50
    assert meta["backend"] == "torch"  # the default, auto, with no export in the model directory


BAD = [  # (what is sent, status, part of the one-line reason)
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"plain words"}, 400, "not valid JSON"),
    ({"json": [1, 2]}, 422, "must be a JSON object"),
    ({"json": {"texts": "one string"}}, 422, "texts: Input should be a valid list"),
    ({"json": {"texts": ["ok", 5]}}, 422, "texts[1]: Input should be a valid string"),
    ({"json": {"items": [{"id": 1}]}}, 422, "items[0].text: Field required"),
    ({"json": {"items": [{"text": "a", "id": [1]}]}}, 422, "items[0].id: must be a string or an integer"),
    (
        {"json": {"items": [{"text": "a", "id": 1.0}]}},
        422,
        "items[0].id: must be a string or an integer, got 1.0",
    ),
    (
        {"json": {"items": [{"text": "a", "id": True}]}},
        422,
        "items[0].id: must be a string or an integer, got True",
    ),
    ({"json": {"texts": []}}, 422, "texts: List should have at least 1 item"),
    ({"json": {}}, 422, "exactly one of 'texts' or 'items'"),
    ({"json": {"texts": ["a"], "items": [{"text": "b"}]}}, 422, "exactly one of"),
    ({"json": {"texts": ["a"], "threshold": 0.3}}, 422, "threshold: unknown field"),
    ({"json": {"text": "x"}}, 422, 'text: unknown field; send {"texts": ["...", ...]} or {"items": [{'),
    (
        {"content": b'{"texts": ["a\\ud800"]}', "headers": {"content-type": "application/json"}},
        422,
        "texts[0]: lone surrogate",
    ),
    ({"json": {"texts": ["a"] * 51}}, 413, "51 texts in one request; the limit is 50"),
    ({"json": {"texts": ["x" * 30000]}}, 413, "over the 20,000-byte limit"),
    (
        {"json": {"texts": ["a", "x" * 12001]}},
        413,
        "texts[1]: 12,001 characters; the limit is 12,000 per text",
    ),
    ({"json": {"items": [{"text": "x" * 12001}]}}, 413, "items[0].text: 12,001 characters"),
    ({"json": {"texts": ["x" * 8000] * 2}}, 413, "16,000 characters in one request; the limit is 15,000"),
    (
        {"content": iter([b'{"texts": ["', b"x" * 15000, b"x" * 15000, b'"]}'])},
        413,
        "over the 20,000-byte limit",
    ),  # chunked: no Content-Length to check up front
]


@pytest.mark.slow
def test_bad_requests_get_a_4xx_with_one_line_and_the_server_stays_up(server):
    for kwargs, status, reason in BAD:
        response = httpx.post(f"{server}/predict", **kwargs)
        body = response.json()
        assert response.status_code == status and reason in body["error"], (kwargs, body)
        assert "\n" not in body["error"] and body["request_id"] == response.headers["x-request-id"]
    assert httpx.get(f"{server}/health").json() == {"status": "ready"}
    assert httpx.post(f"{server}/predict", json={"texts": ["NATO họp."]}).status_code == 200


@pytest.mark.slow
def test_the_log_has_a_ready_line_and_a_line_per_request(server, server_log, trained_dir):
    response = httpx.post(f"{server}/predict", json={"texts": ["NATO họp."]}, headers={"X-Request-ID": "r-7"})
    assert response.status_code == 200
    assert httpx.get(f"{server}/a%0Ab").status_code == 404  # a line break in the path stays escaped
    deadline = time.monotonic() + 10
    while "request_id=r-7" not in (log := server_log.read_text("utf-8")) or "GET /a" not in log:
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
    ready = [line for line in log.splitlines() if "model ready" in line]
    assert len(ready) == 1, log
    assert f"model ready at {server}: {trained_dir}, backend torch on cpu, labels " in ready[0]
    assert re.search(r"^INFO: +POST /predict 200 \d+\.\d ms request_id=r-7$", log, re.MULTILINE), log
    assert re.search(r"GET /a\\nb 404 \d+\.\d ms request_id=[0-9a-f]{32}$", log, re.MULTILINE), log
    assert 'HTTP/1.1" 200' not in log  # uvicorn's own access line is replaced, not doubled


@pytest.mark.slow
def test_concurrent_clients_lose_nothing_and_get_their_own_answers(server, classifier):
    """8 clients, 240 requests of 1-6 texts each: every answer is its request's, in order."""
    pool = sample_texts(120, seed=1)
    expected = dict(zip(pool, classifier.predict(pool), strict=True))
    rng = random.Random(2)
    requests = [rng.sample(pool, rng.randint(1, 6)) for _ in range(240)]
    before = counters(httpx.get(f"{server}/metrics").text)

    def client(batch: list[list[str]]) -> int:
        with httpx.Client(base_url=server, timeout=60) as http:
            for texts in batch:
                response = http.post(
                    "/predict",
                    json={"items": [{"id": f"{i}:{t[:20]}", "text": t} for i, t in enumerate(texts)]},
                )
                assert response.status_code == 200, response.text
                got = response.json()["predictions"]
                assert [g["id"] for g in got] == [f"{i}:{t[:20]}" for i, t in enumerate(texts)]
                assert all(same(g, expected[t]) for g, t in zip(got, texts, strict=True))
        return len(batch)

    with ThreadPoolExecutor(8) as clients:
        assert sum(clients.map(client, [requests[i::8] for i in range(8)])) == 240
    after = counters(httpx.get(f"{server}/metrics").text)
    ok = ("vitopic_requests_total", (("route", "/predict"), ("status", "200")))
    assert after[ok] - before.get(ok, 0) == 240
    key = ("vitopic_inputs_total", ())
    assert after[key] - before[key] == sum(map(len, requests))
    batches = ("vitopic_batch_size_count", ())
    assert after[batches] - before[batches] < 240  # concurrent requests shared model calls


def test_cli_http_ray_and_predict_give_the_same_numbers(server, trained_dir, classifier, tmp_path):
    """One path from a prediction to an output row (`Prediction.to_row`): the same input gives
    exactly the same labels and scores whichever way it is asked (batched alike: how pieces share
    a padded batch moves a score by a float32 rounding step)."""
    from vitopic.integrations.ray import Labeler

    texts = [*sample_texts(6, seed=3), ARTICLE, ""]
    batch = Limits().max_batch  # the server's batch size
    expected = [p.to_row() for p in classifier.predict(texts, batch_size=batch)]
    served = httpx.post(f"{server}/predict", json={"texts": texts}, timeout=HANG).json()["predictions"]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), "utf-8")
    ran = run_cli("predict", "--model", trained_dir, "--input", source, "--batch-size", batch, "--quiet")
    assert ran.code == 0, ran.err
    written = [json.loads(line) for line in ran.out.splitlines()]
    columns = Labeler(str(trained_dir), batch_size=batch)({"text": np.array(texts, dtype=object)})
    from_ray = [
        {
            "labels": list(columns["labels"][i].as_py()),
            "scores": {lab: float(columns[f"score_{lab}"][i]) for lab in classifier.labels},
            "empty": bool(columns["empty"][i]),
        }
        for i in range(len(texts))
    ]
    assert served == expected
    assert [{k: row[k] for k in expected[0]} for row in written] == expected
    assert from_ray == expected


def test_the_batcher_merges_waiting_requests_up_to_max_batch():
    calls: list[list[str]] = []

    def predict(texts):
        calls.append(texts)
        return [t.upper() for t in texts]

    async def scenario():
        batcher = MicroBatcher(predict, Limits(max_batch=5, max_wait_ms=200))
        worker = asyncio.create_task(batcher.run())
        jobs = [["a", "b"], ["c"], ["d", "e"], ["f"], ["g", "h", "i", "j", "k", "l"]]
        results = await asyncio.gather(*(batcher.submit(j) for j in jobs))
        worker.cancel()
        batcher.close()
        return results

    results = asyncio.run(scenario())
    assert results == [["A", "B"], ["C"], ["D", "E"], ["F"], ["G", "H", "I", "J", "K", "L"]]
    # smallest requests first, up to 5 texts a call; the 6-text request in two parts, in order
    assert calls == [["c", "f", "a", "b"], ["d", "e"], ["g", "h", "i", "j", "k"], ["l"]]


def test_a_failed_batch_is_retried_request_by_request(caplog):
    """Only the request that makes the model fail gets the error; the log names the request ids."""
    calls: list[list[str]] = []

    def predict(texts):
        calls.append(texts)
        if "BOOM" in texts:
            raise RuntimeError("weights on fire")
        return [t.upper() for t in texts]

    async def scenario():
        batcher = MicroBatcher(predict, Limits(max_wait_ms=200))
        worker = asyncio.create_task(batcher.run())
        texts = [[f"t{i}"] if i != 3 else ["BOOM"] for i in range(8)]
        results = await asyncio.gather(
            *(batcher.submit(t, f"req-{i}") for i, t in enumerate(texts)), return_exceptions=True
        )
        worker.cancel()
        batcher.close()
        return results

    results = asyncio.run(scenario())
    assert [r if isinstance(r, list) else "error" for r in results] == [
        *([f"T{i}"] for i in range(3)),
        "error",
        *([f"T{i}"] for i in range(4, 8)),
    ]
    assert isinstance(results[3], ModelError)
    assert len(calls) == 9 and len(calls[0]) == 8  # one batch, then each request alone
    logged = [r for r in caplog.records if r.name == "vitopic.serving"]
    assert all(f"req-{i}" in logged[0].getMessage() for i in range(8))
    assert [r.getMessage() for r in logged[1:]] == ["model call failed on request req-3 (1 texts)"]


def test_a_small_request_does_not_wait_behind_a_huge_one():
    """A big request runs in parts of max_batch_chars; a small one goes before its next part."""
    calls: list[list[str]] = []
    release = threading.Event()

    def predict(texts):
        calls.append(texts)
        release.wait(30)
        return texts

    async def scenario():
        batcher = MicroBatcher(predict, Limits(max_wait_ms=0, max_batch_chars=10))
        worker = asyncio.create_task(batcher.run())
        huge = asyncio.create_task(batcher.submit(["x" * 10] * 5, "huge"))
        while not calls:  # the first part is being predicted
            await asyncio.sleep(0.01)
        small = asyncio.create_task(batcher.submit(["y"], "small"))
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(huge, small)
        worker.cancel()
        batcher.close()
        return results

    assert asyncio.run(scenario()) == [["x" * 10] * 5, ["y"]]
    assert calls == [["x" * 10], ["y"], *[["x" * 10]] * 4]


def _open(server: str) -> socket.socket:
    host, port = server.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _trickle(sock: socket.socket, data: bytes) -> int:
    """Send `data` a byte at a time, about 20 a second, until the server closes: the bytes sent."""
    sock.settimeout(0.05)
    for sent, byte in enumerate(data):
        try:
            if sock.recv(1) == b"":
                return sent
        except TimeoutError:
            pass
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return sent
    return len(data)


def _closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a timeout fails the test)."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


@pytest.mark.slow
def test_slow_clients_are_cut_off(server):
    """Slowloris: headers that never end, headers trickled byte by byte, a body that never ends."""
    with _open(server) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert _closed_by_server(sock) == b""
    with _open(server) as sock:
        data = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
        assert _trickle(sock, data) < len(data)
    with _open(server) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"texts": ['
        )
        answer = _closed_by_server(sock)
        assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer
    assert httpx.get(f"{server}/health").status_code == 200


@pytest.mark.slow
def test_only_loopback_host_names_and_docs_off(server):
    """DNS rebinding: a loopback server answers loopback Host names and --allowed-hosts only."""
    port = server.rsplit(":", 1)[1]
    for host in ("evil.example", "127.0.0.1.nip.io", f"evil.example:{port}", ""):
        response = httpx.get(f"{server}/health", headers={"Host": host})
        assert response.status_code == 400, host
        assert "--allowed-hosts" in response.json()["error"] and "\n" not in response.json()["error"]
    for host in (f"localhost:{port}", "127.0.0.1", f"[::1]:{port}", "API.example"):
        assert httpx.get(f"{server}/health", headers={"Host": host}).status_code == 200, host
    assert httpx.get(f"{server}/docs").status_code == 404
    assert httpx.get(f"{server}/openapi.json").status_code == 404


def test_allowed_hosts_and_docs_switch(classifier):
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::", ["*"]) is None
    assert allowed_hosts("0.0.0.0", ["api.example"]) == {"api.example"}
    assert allowed_hosts("::1") == allowed_hosts("localhost") == {"localhost", "127.0.0.1", "::1"}
    assert "api.example" in allowed_hosts("127.0.0.2", ["API.example:443"])
    with TestClient(create_app(classifier, docs=True)) as http:
        assert http.get("/openapi.json").status_code == 200 and http.get("/docs").status_code == 200


def test_a_model_failure_is_a_500_with_a_request_id_logged_once(classifier, caplog, monkeypatch):
    def broken(texts, **options):
        raise RuntimeError("weights on fire")

    app = create_app(classifier)
    monkeypatch.setattr(classifier, "predict", broken)
    with TestClient(app) as http:
        response = http.post("/predict", json={"texts": ["a", "b"]}, headers={"X-Request-ID": "req-42"})
        assert response.status_code == 500
        assert response.json()["request_id"] == "req-42" == response.headers["x-request-id"]
        assert "weights on fire" not in response.text  # internals stay in the log
        assert http.get("/health").status_code == 200
    failures = [r for r in caplog.records if r.name == "vitopic.serving"]
    assert len(failures) == 1 and "weights on fire" in failures[0].exc_text


def test_health_is_503_until_the_model_is_loaded(trained_dir, monkeypatch):
    from vitopic.predict import TopicClassifier

    release = threading.Event()
    real = TopicClassifier.from_pretrained

    def slow_load(*args, **kwargs):
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(TopicClassifier, "from_pretrained", slow_load)
    with TestClient(create_app(str(trained_dir))) as http:
        assert http.get("/health").status_code == 503
        assert http.get("/health").json()["status"] == "loading"
        assert http.post("/predict", json={"texts": ["a"]}).status_code == 503
        release.set()
        deadline = time.monotonic() + 30
        while http.get("/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http.post("/predict", json={"texts": ["a"]}).status_code == 200
        gauge = counters(http.get("/metrics").text)[("vitopic_model_ready", ())]
        assert gauge == 1


@pytest.mark.slow
def test_serve_exits_with_one_line_when_the_model_cannot_load(tmp_path):
    proc = subprocess.run(
        [
            *VITOPIC,
            "serve",
            "--model",
            str(tmp_path),
            "--port",
            str(free_port()),
            "--log-level",
            "critical",
        ],
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: could not load the model: ")
    assert "vitopic.json" in proc.stderr.splitlines()[-1]
