"""Inference throughput, latency and memory: transformers.pipeline vs vitopic's backends,
interleaved so that load coming and going on a shared machine lands on every path alike.

    python benchmarks/inference.py            # 5 rounds of 200 sentences, PhoBERT-base-sized model
    python benchmarks/inference.py --quick    # smoke run
    python benchmarks/inference.py --device cuda   # GPU: pipeline, torch and torch-bf16 on the device

All paths are loaded in one process and measured in rounds: each round runs every path once, in
an order rotated per round, on the same inputs, and then the matmul peaks. Figures are medians
over rounds; a path's speed-up is the median of its per-round ratios to the pipeline (min-max
beside it). Every timing includes text preparation (normalisation + pyvi word segmentation).
Peak RSS and load time come from a separate pass, one fresh process per path. Inputs are the
repo's test split; label agreement with fp32 is measured on the trained tiny model (runs/tiny),
on real-news-dev where it is present, else on the test split.

FLOP estimate of one encoder forward over a batch of B sequences padded to width S:
    2 * P_lin * B * S  +  4 * L * B * S^2 * H
with P_lin = L * (4 H^2 + 2 H I) the weights of the encoder's linear layers (Q, K, V, output,
and the two feed-forward matrices), L layers, hidden size H, intermediate size I; the second term
is QK^T and attention x V. Embeddings, layer norms, softmax and the tiny head are ignored.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import (
    FALLBACK,
    PHOBERT_BASE,
    TINY,
    base_checkpoint,
    emit_result,
    ensure_ct2,
    ensure_onnx,
    ensure_tiny,
    load_texts,
    machine_info,
    median,
    peak_rss_mb,
    percentile,
    repeat_to,
    run_child,
    set_threads,
    table,
    timed,
)

from vitopic.quiet import quiet

PATHS = ("pipeline", "torch", "torch-bf16", "onnx", "onnx-int8", "ct2-int8")
DEVICE_PATHS = ("pipeline", "torch", "torch-bf16")  # ONNX Runtime and CTranslate2 run on the CPU here
BATCH = 32


def make_predict(
    path: str, directory: Path, device: str
) -> tuple[Callable[[list[str]], list[list[str]]], float]:
    """A `texts -> label sets` function for `path` over the checkpoint `directory` on `device`, and
    its load time."""
    from vitopic.checkpoint import Metadata
    from vitopic.text import prepare

    start = time.perf_counter()
    if path == "pipeline":
        from transformers import pipeline

        meta = Metadata.load(directory)
        cuts = dict(zip(meta.labels, meta.thresholds, strict=True))
        pipe = pipeline("text-classification", model=str(directory), top_k=None, device=device)

        def predict(texts: list[str]) -> list[list[str]]:
            out = pipe(prepare(texts, meta.segmenter), batch_size=BATCH, truncation=True, max_length=256)
            return [[d["label"] for d in row if d["score"] >= cuts[d["label"]]] for row in out]
    else:
        from vitopic.predict import TopicClassifier

        clf = TopicClassifier.from_pretrained(directory, backend=path, device=device)

        def predict(texts: list[str]) -> list[list[str]]:
            return [p.labels for p in clf.predict(texts, batch_size=BATCH)]

    return predict, time.perf_counter() - start


def child(path: str, n: int, device: str) -> None:
    """Load one path, predict the inputs, and emit its load time, peak RSS and peak device memory
    (fresh process)."""
    import torch

    set_threads()
    inputs = repeat_to(load_texts(FALLBACK)[0], n)
    predict, load_s = make_predict(path, base_checkpoint(), device)
    predict(inputs)
    cuda = torch.device(device).type == "cuda"
    device_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    emit_result({"path": path, "load_s": load_s, "rss_mb": peak_rss_mb(), "device_mb": device_mb})


def batch_widths(lengths: list[int], sort: bool) -> list[tuple[int, int]]:
    """(rows, padded width) of each batch of `BATCH`, in input order or sorted by length."""
    order = sorted(lengths) if sort else lengths
    return [(len(b), max(b)) for b in (order[i : i + BATCH] for i in range(0, len(order), BATCH))]


def piece_lengths(clf, texts: list[str]) -> list[int]:
    """Token lengths (specials included) of exactly what `clf.predict(texts)` batches (long inputs
    split)."""
    return [len(p) + 2 for p in clf._pieces(texts)[1]]


def padding_stats(inputs: list[str]) -> dict[str, list[tuple[int, int]] | list[int]]:
    """Token lengths (specials included) and batch shapes for vitopic's and the pipeline's batching."""
    from vitopic.text import prepare

    clf = _tiny_classifier()  # same tokenizer files, segmenter and limit as base
    vito = piece_lengths(clf, inputs)
    pipe = [
        len(ids)
        for ids in clf.tokenizer(prepare(inputs, "pyvi"), truncation=True, max_length=256)["input_ids"]
    ]
    return {
        "vitopic": vito,
        "vitopic_batches": batch_widths(vito, sort=True),
        "pipeline": pipe,
        "pipeline_batches": batch_widths(pipe, sort=False),
    }


def encoder_flops(batches: list[tuple[int, int]], shape: dict = PHOBERT_BASE) -> float:
    """The docstring's FLOP estimate summed over batches of (rows, width), for an encoder of
    `shape` (a model config's hidden_size, num_hidden_layers and intermediate_size)."""
    h, layers, inter = shape["hidden_size"], shape["num_hidden_layers"], shape["intermediate_size"]
    p_lin = layers * (4 * h * h + 2 * h * inter)
    return sum(2 * p_lin * b * s + 4 * layers * b * s * s * h for b, s in batches)


def matmul_peaks(device: str, size: int = 2048, repeats: int = 3) -> dict[str, float]:
    """Best GFLOP/s of a size^3 matmul: fp32 and bf16 in torch on `device`, and on the CPU int8 as
    ONNX Runtime runs the onnx-int8 path's MatMuls (dynamic quantisation of the activations
    included)."""
    import torch

    a = torch.randn(size, size, device=device)
    b = a.bfloat16()
    ops = {"fp32": lambda: a @ a, "bf16": lambda: b @ b}
    if device == "cpu":
        x = a.numpy()
        session = _int8_matmul(x)
        ops["int8"] = lambda: session.run(None, {"x": x})
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else lambda: None
    peaks = {}
    with torch.inference_mode():
        for name, op in ops.items():
            op()
            sync()
            best = min(timed(lambda op=op: (op(), sync()))[0] for _ in range(repeats))
            peaks[name] = 2 * size**3 / best / 1e9
    return peaks


def _int8_matmul(weight: np.ndarray):
    """An ONNX Runtime session of `x @ weight`, dynamically quantised to int8 like model.int8.onnx."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shape = list(weight.shape)
    with tempfile.TemporaryDirectory() as tmp:
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            "matmul",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
            [numpy_helper.from_array(weight, "w")],
        )
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), f"{tmp}/fp32.onnx")
        with quiet(""):
            quantize_dynamic(f"{tmp}/fp32.onnx", f"{tmp}/int8.onnx", weight_type=QuantType.QInt8)
        return onnxruntime.InferenceSession(f"{tmp}/int8.onnx", providers=["CPUExecutionProvider"])


def spread(values: list[float], digits: int = 2) -> str:
    """`median (min-max)`."""
    return f"{median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="sentences per path per round (cycled)")
    parser.add_argument(
        "--singles", type=int, default=20, help="single-sentence calls per path per round, for latency"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 32 sentences")
    parser.add_argument("--device", default="cpu", help="cpu (all paths) or e.g. cuda")
    parser.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.quick:
        args.n, args.singles, args.rounds = 32, 4, 2
    if args.path:
        return child(args.path, args.n, args.device)

    import ctranslate2
    import onnxruntime

    cores = set_threads()
    cpu = args.device == "cpu"
    paths = PATHS if cpu else DEVICE_PATHS
    texts, source = load_texts(FALLBACK)  # what a fresh clone has: timings anyone can reproduce
    inputs = repeat_to(texts, args.n)
    agreement_texts, agreement_source = load_texts()
    print(machine_info() + f", onnxruntime {onnxruntime.__version__}, ctranslate2 {ctranslate2.__version__}")
    print(
        f"inputs: {source}, cycled to {args.n} sentences per path per round; {args.rounds} "
        f"rounds; torch threads {cores}; device {args.device}; batch {BATCH}; label agreement on "
        f"{agreement_source}"
    )
    base = base_checkpoint()
    ensure_tiny()
    if cpu:
        for directory in (base, TINY):
            ensure_onnx(directory)
            ensure_ct2(directory)
    memory = {
        path: run_child(__file__, ["--path", path, "--n", str(args.n), "--device", args.device])
        for path in paths
    }

    tiny_labels = {path: make_predict(path, TINY, args.device)[0](agreement_texts) for path in paths}
    predictors = {path: make_predict(path, base, args.device)[0] for path in paths}
    for predict in predictors.values():
        predict(inputs[:BATCH])  # warm-up: first-call allocations, segmenter start-up
    sps: dict[str, list[float]] = {path: [] for path in paths}
    ratio: dict[str, list[float]] = {path: [] for path in paths}
    latency: dict[str, list[float]] = {path: [] for path in paths}
    peaks: dict[str, list[float]] = {}
    for r in range(args.rounds):
        order = paths[r % len(paths) :] + paths[: r % len(paths)]
        for path in order:
            sps[path].append(args.n / timed(lambda p=path: predictors[p](inputs))[0])
            latency[path] += [
                timed(lambda p=path, t=t: predictors[p]([t]))[0] for t in inputs[: args.singles]
            ]
        for name, value in matmul_peaks(args.device).items():
            peaks.setdefault(name, []).append(value)
        for path in paths:
            ratio[path].append(sps[path][-1] / sps["pipeline"][-1])
        print(
            f"  round {r + 1}: " + ", ".join(f"{p} {sps[p][-1]:.1f}" for p in paths) + " sentences/s",
            flush=True,
        )

    ref = tiny_labels["torch"]
    rows = []
    for path in paths:
        agree = np.mean([set(a) == set(b) for a, b in zip(tiny_labels[path], ref, strict=True)])
        rows.append(
            [
                path,
                f"{median(sps[path]):.1f}",
                spread(ratio[path]) + "x",
                f"{1000 * percentile(latency[path], 50):.1f}",
                f"{1000 * percentile(latency[path], 95):.1f}",
                f"{memory[path]['rss_mb']:.0f}",
                f"{memory[path]['load_s']:.1f}",
                *([] if cpu else [f"{memory[path]['device_mb']:.0f}"]),
                f"{100 * agree:.1f}",
            ]
        )
    print(
        f"\n## Inference, PhoBERT-base-sized random model, {args.n} sentences x {args.rounds} "
        "rounds (prep included; medians)\n"
    )
    print(
        table(
            [
                "path",
                "sentences/s",
                "vs pipeline, median (min-max)",
                "p50 ms (1 sent)",
                "p95 ms (1 sent)",
                "peak RSS MiB",
                "load s",
                *([] if cpu else ["peak device MiB"]),
                f"tiny label agreement % (n={len(ref)})",
            ],
            rows,
        )
    )

    stats = padding_stats(inputs)
    print("\n## Padding (tokens per sequence, <s> and </s> included)\n")
    pad_rows = []
    for name, label in (("vitopic", "vitopic (sorted, dynamic)"), ("pipeline", "pipeline (input order)")):
        real = sum(stats[name])
        padded = sum(b * s for b, s in stats[f"{name}_batches"])
        pad_rows.append(
            [
                label,
                len(stats[name]),
                f"{real / len(stats[name]):.1f}",
                f"{padded / len(stats[name]):.1f}",
                f"{100 * (padded / real - 1):.1f}",
            ]
        )
    print(
        table(["batching", "sequences", "mean real len", "mean padded len", "padding overhead %"], pad_rows)
    )

    fastest = max(paths, key=lambda p: median(sps[p]))
    kind = "pipeline" if fastest == "pipeline" else "vitopic"
    flops = encoder_flops(stats[f"{kind}_batches"])
    seconds = args.n / median(sps[fastest])
    achieved = flops / seconds / 1e9
    best = max(peaks, key=lambda k: median(peaks[k]))
    prep = min(timed(lambda: prep_tokens(inputs))[0] for _ in range(3))
    print(f"\n## Achieved compute of the fastest path ({fastest})\n")
    print(
        table(
            ["quantity", "value"],
            [
                ["encoder FLOPs executed (padded), GFLOP", f"{flops / 1e9:.0f}"],
                ["median wall time incl. text prep, s", f"{seconds:.2f}"],
                ["text prep + tokenisation, s (share of wall)", f"{prep:.2f} ({100 * prep / seconds:.1f} %)"],
                ["achieved GFLOP/s (executed / wall)", f"{achieved:.1f}"],
                *[
                    [
                        f"matmul peak {k} 2048^3, GFLOP/s, median (min-max)"
                        + (" (ONNX Runtime dynamic-int8 MatMul)" if k == "int8" else " (torch)"),
                        spread(v, 0),
                    ]
                    for k, v in peaks.items()
                ],
                [f"achieved / best peak ({best}) %", f"{100 * achieved / median(peaks[best]):.1f}"],
            ],
        )
    )
    goals = [
        ("fastest path >= 6x pipeline", median(ratio[fastest]) >= 6, f"{median(ratio[fastest]):.2f}x"),
        (
            "fastest path >= 85 % of the best matmul peak",
            achieved >= 0.85 * median(peaks[best]),
            f"{100 * achieved / median(peaks[best]):.0f} %",
        ),
        (
            "single-sentence p50 <= 20 ms (fastest path)",
            percentile(latency[fastest], 50) <= 0.02,
            f"{1000 * percentile(latency[fastest], 50):.1f} ms",
        ),
        (
            "label agreement with fp32 >= 99 % (every path)",
            all(float(r[-1]) >= 99 for r in rows),
            f"min {min(float(r[-1]) for r in rows):.1f} %",
        ),
        ("text prep < 5 % of the fastest path", prep < 0.05 * seconds, f"{100 * prep / seconds:.1f} %"),
    ]
    if cpu:
        onnx_vs_torch = median([o / t for o, t in zip(sps["onnx"], sps["torch"], strict=True)])
        goals.insert(
            2,
            (
                "onnx fp32 at least as fast as torch fp32 (median per-round ratio)",
                onnx_vs_torch >= 1,
                f"{onnx_vs_torch:.2f}x",
            ),
        )
    print("\n## Goals (issue 18)\n")
    print(table(["goal", "met", "measured"], [[g, "yes" if ok else "NO", v] for g, ok, v in goals]))
    print(f"speedup_vs_pipeline={median(ratio[fastest]):.2f}")


def prep_tokens(inputs: list[str]) -> int:
    """What every path does before the model: normalise, segment, split and tokenise."""

    clf = _tiny_classifier()
    return len(clf._pieces(inputs)[1])


@functools.cache
def _tiny_classifier():
    from vitopic.predict import TopicClassifier

    return TopicClassifier.from_pretrained(TINY)


if __name__ == "__main__":
    main()
