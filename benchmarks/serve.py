"""Serving: `vitopic serve` under concurrent HTTP clients, beside direct `predict()` in this process.

    python benchmarks/serve.py                          # 3 rounds, 10 s per level, 1/8/32 clients
    python benchmarks/serve.py --rounds 1 --seconds 3   # smoke run

Starts a real `vitopic serve` subprocess on 127.0.0.1 (a free port) and drives it from threads,
one `httpx.Client` (one keep-alive connection) each, every request holding `--texts-per-request`
sentences of the test split; latency is from sending a request to its parsed response. Every
response must be 200 with one prediction per text sent; anything else is a failed request.
Direct predict is `TopicClassifier.predict` on the same sentences, called on chunks of the
server's --max-batch (one full micro-batch each), with torch's default thread count, as in the
server; torch in this process is idle while the server is measured. Each round runs direct predict
and every client level once, in an order rotated per round; figures are medians over rounds, and
the served/direct ratio is taken per round. Mean batch size is the server's `vitopic_batch_size`
sum / count (GET /metrics) over each level: the micro-batching at work.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import torch
from common import FALLBACK, REPO, TINY, machine_info, median, percentile, table
from prometheus_client.parser import text_string_to_metric_families

from vitopic import TopicClassifier
from vitopic.data import read_jsonl

HOST = "127.0.0.1"
DIRECT = "direct"


@dataclass
class Served:
    """One client level's figures in one round."""

    requests_per_s: float
    sentences_per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    failures: list[str]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen:
    """`vitopic serve` in a subprocess, its output to `log`."""
    command = [
        sys.executable,
        "-m",
        "vitopic.cli",
        "serve",
        "--model",
        str(args.model),
        "--host",
        HOST,
        "--port",
        str(port),
        "--max-batch",
        str(args.max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--max-texts",
        str(args.texts_per_request),
        "--log-level",
        "warning",
    ]
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(proc: subprocess.Popen, base: str, timeout: float, log: Path) -> None:
    """Return once /health is 200; raise if the server exits or takes over `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready in {timeout:g} s:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen) -> str:
    """SIGTERM (uvicorn shuts down gracefully, then re-raises it), SIGKILL after 15 s; how it ended."""
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "killed: still running 15 s after SIGTERM"
    if proc.returncode == -signal.SIGTERM:
        return "exit -15: SIGTERM, re-raised by uvicorn after its graceful shutdown"
    return f"exit code {proc.returncode}"


def batch_totals(base: str) -> tuple[float, float]:
    """The server's vitopic_batch_size histogram (sum, count) so far."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "vitopic_batch_size"
        for sample in family.samples
    }
    return values["vitopic_batch_size_sum"], values["vitopic_batch_size_count"]


def ms(latencies: list[float], q: float) -> float:
    """The q-th percentile of `latencies` (s) in ms; NaN when there are none."""
    return 1000 * percentile(latencies, q) if latencies else float("nan")


def client(
    base: str, texts: list[str], offset: int, per_request: int, start: float, stop: float
) -> tuple[list[float], list[str], float]:
    """Send requests back to back from `start` until `stop` (perf_counter times); the latencies
    (s) of the good ones, a line per failed one, and when the last answer came."""
    latencies: list[float] = []
    failures: list[str] = []
    batches = (
        [texts[(offset + k) % len(texts)] for k in range(i, i + per_request)]
        for i in itertools.count(0, per_request)
    )
    with httpx.Client(base_url=base, timeout=60) as http:
        time.sleep(max(start - time.perf_counter(), 0))
        while (sent := time.perf_counter()) < stop:
            batch = next(batches)
            try:
                response = http.post("/predict", json={"texts": batch})
                got = len(response.json().get("predictions", [])) if response.status_code == 200 else 0
            except (httpx.HTTPError, ValueError) as err:
                failures.append(f"{type(err).__name__}: {err}")
                continue
            if response.status_code != 200 or got != len(batch):
                failures.append(
                    f"HTTP {response.status_code}, {got} predictions for {len(batch)} "
                    f"texts: {response.text[:200]}"
                )
                continue
            latencies.append(time.perf_counter() - sent)
    return latencies, failures, time.perf_counter()


def serve_level(base: str, texts: list[str], clients: int, args: argparse.Namespace) -> Served:
    """`clients` concurrent clients for `args.seconds`."""
    sum0, count0 = batch_totals(base)
    start = time.perf_counter() + 0.2  # every client has its httpx.Client by then
    stride = len(texts) // clients
    with ThreadPoolExecutor(clients) as pool:
        runs = list(
            pool.map(
                lambda c: client(
                    base, texts, c * stride, args.texts_per_request, start, start + args.seconds
                ),
                range(clients),
            )
        )
    elapsed = max(end for _, _, end in runs) - start
    latencies = [lat for lats, _, _ in runs for lat in lats]
    sum1, count1 = batch_totals(base)
    return Served(
        len(latencies) / elapsed,
        len(latencies) * args.texts_per_request / elapsed,
        ms(latencies, 50),
        ms(latencies, 99),
        (sum1 - sum0) / max(count1 - count0, 1),
        [f for _, fails, _ in runs for f in fails],
    )


def direct_rate(clf: TopicClassifier, texts: list[str], batch: int, seconds: float) -> float:
    """Sentences/s of `clf.predict` over `texts` in chunks of `batch`, cycled for `seconds`."""
    chunks = itertools.cycle([texts[i : i + batch] for i in range(0, len(texts), batch)])
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        chunk = next(chunks)
        clf.predict(chunk, batch_size=batch)
        done += len(chunk)
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=TINY, help="checkpoint dir (default runs/tiny)")
    parser.add_argument("--data", type=Path, default=FALLBACK, help="JSONL whose texts are sent")
    parser.add_argument(
        "--clients",
        type=lambda v: [int(c) for c in v.split(",")],
        default=[1, 8, 32],
        help="concurrent client levels, comma-separated",
    )
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10, help="per level (and direct predict) per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=64, help="the server's; direct predict's chunk")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="the server's")
    parser.add_argument("--startup-timeout", type=float, default=120, help="seconds to wait for /health")
    args = parser.parse_args()
    if not (args.model / "vitopic.json").is_file():
        sys.exit(
            f"{args.model}: no vitopic checkpoint; train it with `vitopic train --config configs/tiny.yaml`"
        )

    texts = [example.text for example in read_jsonl(args.data, None)]
    print(machine_info())
    print(
        f"inputs: {args.data} ({len(texts)} texts), {args.texts_per_request} per request; "
        f"model {args.model}; server --max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms}"
    )
    print(
        f"torch threads: {torch.get_num_threads()} in this process (torch's default, as in the "
        f"server); the server, the client threads and direct predict share the "
        f"{len(os.sched_getaffinity(0))} usable cores"
    )
    clf = TopicClassifier.from_pretrained(args.model)
    clf.predict(texts[: args.max_batch], batch_size=args.max_batch)  # warm-up
    direct: list[float] = []
    served: dict[int, list[Served]] = {c: [] for c in args.clients}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        port = free_port()
        base = f"http://{HOST}:{port}"
        proc = start_server(args, port, log)
        try:
            wait_ready(proc, base, args.startup_timeout, log)
            with httpx.Client(base_url=base, timeout=60) as http:
                for text in texts[:8]:  # warm-up
                    http.post("/predict", json={"texts": [text] * args.texts_per_request})
            order: list[int | str] = [DIRECT, *args.clients]
            for r in range(args.rounds):
                for item in order[r % len(order) :] + order[: r % len(order)]:
                    if item == DIRECT:
                        direct.append(direct_rate(clf, texts, args.max_batch, args.seconds))
                        print(f"  round {r + 1}: direct predict {direct[-1]:.0f} sentences/s", flush=True)
                        continue
                    s = serve_level(base, texts, item, args)
                    served[item].append(s)
                    print(
                        f"  round {r + 1}: {item} clients {s.sentences_per_s:.0f} sentences/s, "
                        f"p50 {s.p50_ms:.1f} ms, mean batch {s.mean_batch:.1f}, "
                        f"{len(s.failures)} failed",
                        flush=True,
                    )
                    for failure in s.failures[:5]:
                        print(f"    failed: {failure}")
        finally:
            print(f"server stopped ({stop_server(proc)})")
        server_log = log.read_text().strip()
    if server_log:
        print("server log (last 20 lines):\n" + "\n".join(server_log.splitlines()[-20:]))

    rows = []
    for clients, runs in served.items():
        ratios = [s.sentences_per_s / d for s, d in zip(runs, direct, strict=True)]
        rows.append(
            [
                clients,
                f"{median([s.requests_per_s for s in runs]):.0f}",
                f"{median([s.sentences_per_s for s in runs]):.0f}",
                f"{median([s.p50_ms for s in runs]):.1f}",
                f"{median([s.p99_ms for s in runs]):.1f}",
                f"{median([s.mean_batch for s in runs]):.1f}",
                f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                sum(len(s.failures) for s in runs),
            ]
        )
    print(
        f"\n## Serving, {args.rounds} rounds x {args.seconds:g} s per level, "
        f"{args.texts_per_request} text(s) per request (medians over rounds)\n"
    )
    print(
        f"direct predict, chunks of {args.max_batch}: {median(direct):.0f} sentences/s "
        f"(rounds: {', '.join(f'{d:.0f}' for d in direct)})\n"
    )
    print(
        table(
            [
                "clients",
                "requests/s",
                "sentences/s",
                "p50 ms",
                "p99 ms",
                "mean batch",
                "served/direct sentences/s (min-max)",
                "failed requests",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
