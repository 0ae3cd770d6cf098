"""Where ONNX Runtime's time goes: kernel time by operator type for an exported model, and how
fast its matrix products run beside the matmul peaks measured in the same run.

    python benchmarks/onnx_profile.py                      # onnx-int8, PhoBERT-base-sized model
    python benchmarks/onnx_profile.py --backend onnx       # the fused fp32 graph
    python benchmarks/onnx_profile.py --model runs/tiny    # any checkpoint (exported first if needed)

Runs `TopicClassifier.predict` on the test split (cycled to `--n`, batches of 32, as
`benchmarks/inference.py` does) with ONNX Runtime's profiler on, after one unprofiled warm-up
pass. "GEMM" sums the operators that multiply matrices (int8: DynamicQuantizeMatMul,
MatMulIntegerToFloat, MatMulInteger; fp32: MatMul, FusedMatMul, Gemm, Attention). Their rate is
the encoder FLOP estimate of `benchmarks/inference.py` (linear layers and attention products) over
their kernel time; the whole graph's rate is the same FLOPs over all kernel time.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

from common import FALLBACK, base_checkpoint, ensure_onnx, load_texts, repeat_to, set_threads, table
from inference import BATCH, batch_widths, encoder_flops, matmul_peaks, piece_lengths

from vitopic.checkpoint import INT8_FILE, ONNX_FILE
from vitopic.predict import TopicClassifier

GEMM_OPS = {
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "MatMulInteger",
    "MatMul",
    "FusedMatMul",
    "Gemm",
    "Attention",
}


def kernel_times(
    clf: TopicClassifier, texts: list[str], model: Path, threads: int
) -> collections.Counter[str]:
    """Microseconds of kernel time per operator type over one profiled `clf.predict(texts)`, with
    `model` (the ONNX file `clf` runs) in a profiling session."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = f"{tmp}/ort"
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        clf._runner.session = session
        clf.predict(texts, batch_size=BATCH)
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    totals: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: PhoBERT-base-sized)")
    parser.add_argument("--backend", choices=("onnx-int8", "onnx"), default="onnx-int8")
    parser.add_argument("--n", type=int, default=200, help="sentences (the test split, cycled)")
    parser.add_argument("--top", type=int, default=10, help="operator types listed")
    args = parser.parse_args()

    threads = set_threads()
    base = args.model or base_checkpoint()
    ensure_onnx(base)
    texts = repeat_to(load_texts(FALLBACK)[0], args.n)
    clf = TopicClassifier.from_pretrained(base, backend=args.backend)
    clf.predict(texts, batch_size=BATCH)  # warm-up: segmenter start-up, first-call allocations
    totals = kernel_times(
        clf, texts, base / (INT8_FILE if args.backend == "onnx-int8" else ONNX_FILE), threads
    )
    everything = sum(totals.values())
    gemm = sum(v for op, v in totals.items() if op in GEMM_OPS)
    shape = json.loads((base / "config.json").read_text(encoding="utf-8"))
    flops = encoder_flops(batch_widths(piece_lengths(clf, texts), sort=True), shape)
    peaks = matmul_peaks("cpu")
    best = max(peaks, key=peaks.get)

    print(
        f"{args.backend}, {base} ({shape['num_hidden_layers']} layers, {shape['hidden_size']} wide), "
        f"{args.n} sentences, {threads} threads\n"
    )
    print(
        table(
            ["operator type", "share of kernel time %"],
            [[op, f"{100 * v / everything:.1f}"] for op, v in totals.most_common(args.top)],
        )
    )
    print()
    print(
        table(
            ["quantity", "value"],
            [
                ["GEMM share of kernel time %", f"{100 * gemm / everything:.1f}"],
                ["GEMM GFLOP/s (encoder FLOPs / GEMM kernel time)", f"{flops / gemm / 1e3:.0f}"],
                ["whole graph GFLOP/s (encoder FLOPs / all kernel time)", f"{flops / everything / 1e3:.0f}"],
                *[[f"matmul peak {k} 2048^3, GFLOP/s", f"{v:.0f}"] for k, v in peaks.items()],
                [f"GEMMs / best peak ({best}) %", f"{100 * flops / gemm / 1e3 / peaks[best]:.0f}"],
                [
                    f"whole graph / best peak ({best}) %",
                    f"{100 * flops / everything / 1e3 / peaks[best]:.0f}",
                ],
            ],
        )
    )


if __name__ == "__main__":
    main()
