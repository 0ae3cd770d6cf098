"""Inference throughput, latency and memory: transformers.pipeline vs vitopic's backends.

    python benchmarks/inference.py            # >= 1,000 sentences, PhoBERT-base-sized random model
    python benchmarks/inference.py --quick    # smoke run

Every path is measured in its own subprocess (so peak RSS is per path) on the same inputs, and
every timing includes text preparation (normalisation + pyvi word segmentation). Label agreement
with fp32 is measured on the trained tiny model (runs/tiny), on the unrepeated texts.

FLOP estimate of one encoder forward over a batch of B sequences padded to width S:
    2 * P_lin * B * S  +  4 * L * B * S^2 * H
with P_lin = L * (4 H^2 + 2 H I) the weights of the encoder's linear layers (Q, K, V, output,
and the two feed-forward matrices), L layers, hidden size H, intermediate size I; the second term
is QK^T and attention x V. Embeddings, layer norms, softmax and the tiny head are ignored.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import (
    PHOBERT_BASE,
    TINY,
    base_checkpoint,
    emit_result,
    ensure_onnx,
    ensure_tiny,
    load_texts,
    machine_info,
    peak_rss_mb,
    percentile,
    repeat_to,
    run_child,
    set_threads,
    table,
    timed,
)

PATHS = ("pipeline", "torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8")
BATCH = 32


def make_predict(path: str, directory: Path) -> tuple[Callable[[list[str]], list[list[str]]], float]:
    """A `texts -> label sets` function for `path` over the checkpoint `directory`, and its load time."""
    from vitopic.checkpoint import Metadata
    from vitopic.text import prepare

    start = time.perf_counter()
    if path == "pipeline":
        from transformers import pipeline

        meta = Metadata.load(directory)
        cuts = dict(zip(meta.labels, meta.thresholds, strict=True))
        pipe = pipeline("text-classification", model=str(directory), top_k=None, device="cpu")

        def predict(texts: list[str]) -> list[list[str]]:
            out = pipe(prepare(texts, meta.segmenter), batch_size=BATCH, truncation=True, max_length=256)
            return [[d["label"] for d in row if d["score"] >= cuts[d["label"]]] for row in out]
    else:
        from vitopic.predict import TopicClassifier

        clf = TopicClassifier.from_pretrained(directory, backend=path)

        def predict(texts: list[str]) -> list[list[str]]:
            return [p.labels for p in clf.predict(texts, batch_size=BATCH)]
    return predict, time.perf_counter() - start


def child(path: str, n: int, singles: int) -> None:
    """Measure one path and emit its figures as JSON (run in a fresh process)."""
    set_threads()
    texts, _ = load_texts()
    inputs = repeat_to(texts, n)
    predict, load_s = make_predict(path, base_checkpoint())
    predict(inputs[:BATCH])  # warm-up: first-call allocations, segmenter start-up
    seconds, _ = timed(lambda: predict(inputs))
    latencies = [timed(lambda t=t: predict([t]))[0] for t in inputs[:singles]]
    rss = peak_rss_mb()  # before the tiny model is loaded
    tiny_predict, _ = make_predict(path, TINY)
    emit_result({"path": path, "seconds": seconds, "sps": n / seconds, "load_s": load_s,
                 "p50_ms": 1000 * percentile(latencies, 50), "p95_ms": 1000 * percentile(latencies, 95),
                 "rss_mb": rss, "tiny_labels": tiny_predict(texts)})


def batch_widths(lengths: list[int], sort: bool) -> list[tuple[int, int]]:
    """(rows, padded width) of each batch of `BATCH`, in input order or sorted by length."""
    order = sorted(lengths) if sort else lengths
    return [(len(b), max(b)) for b in (order[i:i + BATCH] for i in range(0, len(order), BATCH))]


def padding_stats(inputs: list[str]) -> dict[str, list[tuple[int, int]] | list[int]]:
    """Token lengths (specials included) and batch shapes for vitopic's and the pipeline's batching."""
    from vitopic.predict import TopicClassifier
    from vitopic.text import prepare

    clf = TopicClassifier.from_pretrained(TINY)  # same tokenizer files, segmenter and limit as base
    _, pieces, _ = clf._pieces(inputs)  # exactly what predict() batches (long inputs split)
    vito = [len(p) + 2 for p in pieces]
    pipe = [len(ids) for ids in clf.tokenizer(prepare(inputs, "pyvi"), truncation=True,
                                              max_length=256)["input_ids"]]
    return {"vitopic": vito, "vitopic_batches": batch_widths(vito, sort=True),
            "pipeline": pipe, "pipeline_batches": batch_widths(pipe, sort=False)}


def encoder_flops(batches: list[tuple[int, int]]) -> float:
    """The docstring's FLOP estimate summed over batches of (rows, width)."""
    h, layers, inter = PHOBERT_BASE["hidden_size"], PHOBERT_BASE["num_hidden_layers"], \
        PHOBERT_BASE["intermediate_size"]
    p_lin = layers * (4 * h * h + 2 * h * inter)
    return sum(2 * p_lin * b * s + 4 * layers * b * s * s * h for b, s in batches)


def matmul_peaks(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best GFLOP/s of a size^3 matmul: fp32, bf16, and int8 (dynamic-quantised Linear)."""
    import torch

    a = torch.randn(size, size)
    b = a.bfloat16()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation
        linear = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(size, size)),
                                                        {torch.nn.Linear}, dtype=torch.qint8)
    ops = {"fp32": lambda: a @ a, "bf16": lambda: b @ b, "int8": lambda: linear(a)}
    peaks = {}
    with torch.inference_mode():
        for name, op in ops.items():
            op()
            peaks[name] = 2 * size ** 3 / min(timed(op)[0] for _ in range(repeats)) / 1e9
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="sentences (texts cycled)")
    parser.add_argument("--singles", type=int, default=50, help="single-sentence calls for latency")
    parser.add_argument("--quick", action="store_true", help="smoke run: 128 sentences, 10 singles")
    parser.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.quick:
        args.n, args.singles = 128, 10
    if args.path:
        return child(args.path, args.n, args.singles)

    cores = set_threads()
    texts, source = load_texts()
    print(machine_info())
    print(f"inputs: {source}, cycled to {args.n} sentences; torch threads {cores}; batch {BATCH}")
    base = base_checkpoint()
    ensure_tiny()
    for directory in (base, TINY):
        ensure_onnx(directory)
    results = {}
    for path in PATHS:
        results[path] = run_child(__file__, ["--path", path, "--n", str(args.n),
                                             "--singles", str(args.singles)])
        r = results[path]
        print(f"  {path}: {r['sps']:.1f} sentences/s, peak RSS {r['rss_mb']:.0f} MiB", flush=True)

    ref, pipe_sps = results["torch"]["tiny_labels"], results["pipeline"]["sps"]
    rows = []
    for path, r in results.items():
        agree = np.mean([set(a) == set(b) for a, b in zip(r["tiny_labels"], ref, strict=True)])
        rows.append([path, f"{r['sps']:.1f}", f"{r['sps'] / pipe_sps:.2f}x", f"{r['p50_ms']:.1f}",
                     f"{r['p95_ms']:.1f}", f"{r['rss_mb']:.0f}", f"{r['load_s']:.1f}", f"{100 * agree:.1f}"])
    print(f"\n## Inference, PhoBERT-base-sized random model, {args.n} sentences (prep included)\n")
    print(table(["path", "sentences/s", "vs pipeline", "p50 ms (1 sent)", "p95 ms (1 sent)",
                 "peak RSS MiB", "load s", f"tiny label agreement % (n={len(ref)})"], rows))

    stats = padding_stats(repeat_to(texts, args.n))
    print("\n## Padding (tokens per sequence, <s> and </s> included)\n")
    pad_rows = []
    for name, label in (("vitopic", "vitopic (sorted, dynamic)"), ("pipeline", "pipeline (input order)")):
        real = sum(stats[name])
        padded = sum(b * s for b, s in stats[f"{name}_batches"])
        pad_rows.append([label, len(stats[name]), f"{real / len(stats[name]):.1f}",
                         f"{padded / len(stats[name]):.1f}", f"{100 * (padded / real - 1):.1f}"])
    print(table(["batching", "sequences", "mean real len", "mean padded len", "padding overhead %"],
                pad_rows))

    fastest = max(results, key=lambda p: results[p]["sps"])
    kind = "pipeline" if fastest == "pipeline" else "vitopic"
    flops = encoder_flops(stats[f"{kind}_batches"])
    useful = encoder_flops([(1, s) for s in stats[kind]])
    seconds = results[fastest]["seconds"]
    peaks = matmul_peaks()
    dtype = "int8" if "int8" in fastest else "bf16" if "bf16" in fastest else "fp32"
    print(f"\n## Achieved compute of the fastest path ({fastest})\n")
    print(table(["quantity", "value"], [
        ["encoder FLOPs executed (padded), GFLOP", f"{flops / 1e9:.0f}"],
        ["encoder FLOPs on real tokens, GFLOP", f"{useful / 1e9:.0f}"],
        ["wall time incl. text prep, s", f"{seconds:.1f}"],
        ["achieved GFLOP/s (executed / wall)", f"{flops / seconds / 1e9:.1f}"],
        ["useful GFLOP/s (real tokens / wall)", f"{useful / seconds / 1e9:.1f}"],
        *[[f"matmul peak {k} 2048^3, GFLOP/s" + (" (torch dynamic-int8 Linear)" if k == "int8" else ""),
           f"{v:.1f}"] for k, v in peaks.items()],
        ["achieved / fp32 matmul peak %", f"{100 * flops / seconds / 1e9 / peaks['fp32']:.1f}"],
        [f"achieved / {dtype} matmul peak %", f"{100 * flops / seconds / 1e9 / peaks[dtype]:.1f}"],
    ]))
    speedup = results[fastest]["sps"] / pipe_sps
    print(f"\ntarget: fastest path >= 4x pipeline: {'MET' if speedup >= 4 else 'NOT MET'} "
          f"({fastest}, {speedup:.2f}x)")
    print(f"speedup_vs_pipeline={speedup:.2f}")


if __name__ == "__main__":
    main()
