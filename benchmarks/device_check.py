"""GPU check: train a PhoBERT-base-sized model through vitopic, predict 10,000 sentences, print speed.

    python benchmarks/device_check.py                 # on a CUDA machine (sized for under 8 minutes)
    python benchmarks/device_check.py --smoke --device cpu   # seconds: checks the script itself

The model has PhoBERT-base's shape (768 wide, 12 layers, 12 heads; random weights, the same
compute as the real one, except a smaller vocabulary learned from the corpus) and is trained from
scratch on the shipped corpus with `training.bf16=true` through `vitopic.training.train`, then
reloaded with `TopicClassifier.from_pretrained(..., device=..., backend="torch-bf16")` to label the
corpus's sentences (cycled to `--n`). Prints training and prediction sentences/s and peak GPU
memory. The quality of this model means nothing (a few hundred steps from scratch).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import FALLBACK, REPO, load_texts, repeat_to

from vitopic import TopicClassifier
from vitopic.config import load_config
from vitopic.training import train

BASE_SHAPE = (
    "model.hidden_size=768",
    "model.num_hidden_layers=12",
    "model.num_attention_heads=12",
    "model.intermediate_size=3072",
)
SMOKE_SHAPE = (
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n", type=int, default=10_000, help="sentences to predict")
    parser.add_argument("--smoke", action="store_true", help="a tiny shape, 4 steps, 64 sentences")
    args = parser.parse_args()
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device is visible; run with --device cpu --smoke to check the "
            "script, or on a GPU machine"
        )
    steps, n = (4, 64) if args.smoke else (args.steps, args.n)
    with tempfile.TemporaryDirectory() as scratch:
        cfg = load_config(
            REPO / "configs" / "tiny.yaml",
            [
                f"data.dir={FALLBACK.parent}",
                f"output.dir={Path(scratch) / 'run'}",
                *(SMOKE_SHAPE if args.smoke else BASE_SHAPE),
                "training.bf16=true",
                f"training.max_steps={steps}",
                f"training.batch_size={args.batch_size}",
                f"training.eval_steps={steps}",
                "training.early_stopping_patience=null",
                "training.learning_rate=1e-4",
            ],
        )
        start = time.perf_counter()
        result = train(cfg)  # includes dev/test scoring and saving, as a user's run does
        train_s = time.perf_counter() - start
        if cuda:
            train_peak = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        clf = TopicClassifier.from_pretrained(result.output_dir, device=args.device, backend="torch-bf16")
        texts, source = load_texts()
        texts = repeat_to(texts, n)
        clf.predict(texts[:256], batch_size=64)  # warm-up
        start = time.perf_counter()
        clf.predict(texts, batch_size=64)
        predict_s = time.perf_counter() - start
    name = torch.cuda.get_device_name() if cuda else args.device
    print(
        f"device {name}; torch {torch.__version__}; shape {'smoke' if args.smoke else 'PhoBERT-base'}; bf16"
    )
    print(
        f"training: {steps} steps x batch {args.batch_size} in {train_s:.0f} s (with dev/test "
        f"scoring and saving): {steps * args.batch_size / train_s:.0f} sentences/s"
    )
    print(
        f"prediction: {n:,} sentences of {source} in {predict_s:.1f} s: "
        f"{n / predict_s:.0f} sentences/s (batch 64, torch-bf16, text preparation included)"
    )
    if cuda:
        print(
            f"peak GPU memory: training {train_peak:.1f} GiB, prediction "
            f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"
        )


if __name__ == "__main__":
    main()
