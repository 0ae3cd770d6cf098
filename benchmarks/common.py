"""Shared helpers for the benchmarks: inputs, a PhoBERT-base-sized checkpoint, timing and memory.

Run every benchmark from the repository root, e.g. `python benchmarks/inference.py`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "runs" / "tiny"
REAL_DEV = REPO.parent / "shared" / "eval" / "real-news-dev.jsonl"
FALLBACK = REPO / "corpus" / "test.jsonl"
BASE_CACHE = Path(os.environ.get("VITOPIC_BENCH_CACHE", "/tmp/vitopic-bench")) / "base"
LABELS = ["ukraine_aid", "gaza", "nato"]
TOKENIZER_FILES = ("vocab.txt", "bpe.codes", "tokenizer_config.json", "added_tokens.json")
RESULT_PREFIX = "BENCH_RESULT_JSON "

# PhoBERT-base's shape (vinai/phobert-base config.json).
PHOBERT_BASE = dict(
    vocab_size=64001,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    max_position_embeddings=258,
    type_vocab_size=1,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)
# PhoBERT-large's shape (vinai/phobert-large config.json).
PHOBERT_LARGE = {
    **PHOBERT_BASE,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}


def load_texts(path: Path | None = None) -> tuple[list[str], str]:
    """The texts of a JSONL file (default: real-news-dev when it is here, read at run time only,
    else the repo's test split), and a description."""
    path = path or (REAL_DEV if REAL_DEV.is_file() else FALLBACK)
    with path.open(encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    return texts, f"{path} ({len(texts)} texts)"


def repeat_to(texts: Sequence[str], n: int) -> list[str]:
    """`texts` cycled to exactly `n` items."""
    return [texts[i % len(texts)] for i in range(n)]


def set_threads() -> int:
    """Use one torch thread per available core; return the count."""
    import torch

    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(cores)
    return cores


def ensure_tiny() -> Path:
    """The trained tiny checkpoint, trained (about a minute) when it is missing."""
    if not (TINY / "vitopic.json").is_file():
        subprocess.run(["vitopic", "train", "--config", "configs/tiny.yaml"], cwd=REPO, check=True)
    return TINY


def base_checkpoint(directory: Path = BASE_CACHE, tokenizer_from: Path | None = None) -> Path:
    """A random-weight RoBERTa classifier with PhoBERT-base's shape, as a vitopic checkpoint (cached).

    Tokenizer files come from `tokenizer_from` (default runs/tiny); `vitopic.json` is written last
    and marks a finished dir.
    """
    if (directory / "vitopic.json").is_file():
        return directory
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from vitopic.checkpoint import Metadata

    tiny = tokenizer_from or ensure_tiny()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    config = RobertaConfig(
        **PHOBERT_BASE,
        problem_type="multi_label_classification",
        tokenizer_class="PhobertTokenizer",
        id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)},
    )
    torch.manual_seed(0)
    RobertaForSequenceClassification(config).save_pretrained(directory)  # safetensors
    for name in TOKENIZER_FILES:
        if (tiny / name).is_file():
            shutil.copy(tiny / name, directory / name)
    # PhoBERT-base's vocabulary size: the tiny BPE vocabulary, padded with unused tokens, <mask> last.
    words = (directory / "vocab.txt").read_text("utf-8").splitlines()
    filler = [f"unused{i}@@ 1" for i in range(PHOBERT_BASE["vocab_size"] - 5 - len(words))]
    (directory / "vocab.txt").write_text("\n".join(words + filler) + "\n", "utf-8")
    (directory / "added_tokens.json").write_text(
        json.dumps({"<mask>": PHOBERT_BASE["vocab_size"] - 1}), "utf-8"
    )
    Metadata(
        labels=LABELS,
        mode="multi_label",
        segmenter="pyvi",
        max_length=256,
        thresholds=[0.5, 0.5, 0.5],
        base_model=None,
    ).save(directory)
    return directory


def ensure_onnx(directory: Path) -> None:
    """Export model.onnx and model.int8.onnx next to the checkpoint unless both exist."""
    from vitopic.checkpoint import INT8_FILE, ONNX_FILE
    from vitopic.export import export_onnx

    if not ((directory / ONNX_FILE).is_file() and (directory / INT8_FILE).is_file()):
        start = time.perf_counter()
        export_onnx(directory, int8=True)
        print(f"exported ONNX for {directory} in {time.perf_counter() - start:.0f} s", flush=True)


def ensure_ct2(directory: Path) -> None:
    """Export the CTranslate2 int8 model (ct2-int8/) into the checkpoint unless it exists."""
    from vitopic.checkpoint import CT2_DIR
    from vitopic.export import export_ct2

    if not (directory / CT2_DIR).is_dir():
        start = time.perf_counter()
        export_ct2(directory)
        print(f"exported CTranslate2 for {directory} in {time.perf_counter() - start:.0f} s", flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    Reads VmHWM from /proc: getrusage's ru_maxrss survives exec on Linux, so a child started by
    a big parent would report the parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds one call of `fn` takes, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def emit_result(result: dict) -> None:
    """Print a child's result as one tagged JSON line for `run_child` to pick up."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(script: str | Path, args: Sequence[str], timeout: float = 1800) -> dict:
    """Run `python script *args` in a fresh process (own peak RSS); return its `emit_result` JSON."""
    proc = subprocess.run(
        [sys.executable, str(script), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
    raise RuntimeError(f"{script} {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats are printed as given (format them before)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return "\n".join(
        [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in cells)]
    )


def machine_info() -> str:
    """CPU model (lscpu), cores, and library versions."""
    import torch

    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), model
        )
    except (OSError, subprocess.CalledProcessError):
        pass
    return (
        f"machine: CPU {model}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), python "
        f"{sys.version.split()[0]}"
    )
