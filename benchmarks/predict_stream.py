"""Streaming predict: `vitopic predict --input F.jsonl --output O.jsonl` in memory constant in the lines.

    python benchmarks/predict_stream.py                        # 10,000 and 200,000 lines
    python benchmarks/predict_stream.py --lines 2000,20000     # quicker

Writes JSONL inputs of N lines (the test split's texts cycled, each with an integer "id") to a
temp dir and runs the CLI on each as a child of this process (`--quiet`, default batch size;
`--backend` passes through). Peak RSS is the child's ru_maxrss from `os.wait4` on its pid: the
kernel's own high-water mark, not a sample. On Linux that figure also counts the spawned child's
image before exec, i.e. this process's RSS, so this process stays small (no torch until the
measurements are done; inputs and outputs are streamed) and prints its own peak: a child peak
above it is the CLI's. Wall time includes interpreter start-up and model loading. Every output
must have exactly N lines whose ids are the input's, in order.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from common import FALLBACK, TINY, machine_info, peak_rss_mb, table

from vitopic.data import read_jsonl
from vitopic.options import BACKENDS


def write_input(path: Path, texts: list[str], lines: int) -> None:
    """`lines` JSONL records {"id": i, "text": ...}, the texts cycled."""
    with path.open("w", encoding="utf-8") as f:
        for i, text in zip(range(lines), itertools.cycle(texts)):
            f.write(json.dumps({"id": i, "text": text}, ensure_ascii=False) + "\n")


def run_cli(args: argparse.Namespace, source: Path, output: Path, log: Path) -> tuple[float, float, int]:
    """Run `vitopic predict` on `source`; wall seconds, the child's peak RSS (MiB), exit code."""
    argv = [
        sys.executable,
        "-m",
        "vitopic.cli",
        "predict",
        "--model",
        str(args.model),
        "--input",
        str(source),
        "--output",
        str(output),
        "--backend",
        args.backend,
        "--quiet",
    ]
    files = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(sys.executable, argv, os.environ, file_actions=files)
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def check_output(path: Path, lines: int) -> str:
    """OK when `path` has exactly `lines` rows with ids 0..lines-1 in order, else what is wrong."""
    count = 0
    with path.open(encoding="utf-8") as f:
        for count, line in enumerate(f, start=1):
            row = json.loads(line)
            if row.get("id") != count - 1 or "labels" not in row:
                return f"FAIL: line {count} has id {row.get('id')!r} (want {count - 1})"
    return "OK" if count == lines else f"FAIL: {count} lines, want {lines}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--lines",
        type=lambda v: [int(n) for n in v.split(",")],
        default=[10_000, 200_000],
        help="input sizes, comma-separated",
    )
    parser.add_argument("--model", type=Path, default=TINY, help="checkpoint dir (default runs/tiny)")
    parser.add_argument("--data", type=Path, default=FALLBACK, help="JSONL whose texts are cycled")
    parser.add_argument(
        "--backend",
        default="torch",
        choices=BACKENDS,
        help="passed to `vitopic predict`; onnx ones need `vitopic export` first",
    )
    args = parser.parse_args()
    if not (args.model / "vitopic.json").is_file():
        sys.exit(
            f"{args.model}: no vitopic checkpoint; train it with `vitopic train --config configs/tiny.yaml`"
        )

    texts = [example.text for example in read_jsonl(args.data, None)]
    rows: list[list[str]] = []
    peaks: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for lines in args.lines:
            source, output, log = (Path(tmp) / f"{lines}.{ext}" for ext in ("jsonl", "out.jsonl", "log"))
            write_input(source, texts, lines)
            seconds, rss, code = run_cli(args, source, output, log)
            verdict = (
                check_output(output, lines)
                if code == 0
                else f"FAIL: exit {code}: {log.read_text().strip()[-300:]}"
            )
            print(f"  {lines} lines: {seconds:.1f} s, peak RSS {rss:.0f} MiB, {verdict}", flush=True)
            peaks[lines] = rss
            rows.append([f"{lines:,}", f"{seconds:.1f}", f"{lines / seconds:.0f}", f"{rss:.0f}", verdict])
            source.unlink()
            output.unlink(missing_ok=True)
    own = peak_rss_mb()  # before machine_info imports torch
    print(machine_info())
    print(f"inputs: {args.data} ({len(texts)} texts) cycled; model {args.model}, backend {args.backend}")
    print(f"this process's peak RSS: {own:.0f} MiB (a floor under the children's figures)")
    print(f"\n## Streaming predict, {args.backend} backend (wall time includes start-up and loading)\n")
    print(table(["lines", "wall s", "lines/s", "peak RSS MiB", "output"], rows))
    big, small = max(args.lines), min(args.lines)
    print(
        f"\npeak RSS, largest / smallest input: {peaks[big] / peaks[small]:.2f}x ({big:,} vs {small:,} lines)"
    )


if __name__ == "__main__":
    main()
