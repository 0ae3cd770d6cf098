"""Training speed and memory of PhoBERT-base- and -large-sized models, and the epoch time it implies.

    python benchmarks/training_step.py [--sizes base large] [--device cpu]

One optimizer step (forward + backward + AdamW, multi-hot BCE loss) on random weights with the
real models' shapes, at each `phobert-*` config's batch size and 64 tokens per sentence, in fp32
and bf16 autocast; each (size, mode) in a fresh subprocess so peak memory is its own. The time per
epoch on the shipped corpus is extrapolated from the median step time: train sentences / throughput.
"""

from __future__ import annotations

import argparse

from common import (
    PHOBERT_BASE,
    PHOBERT_LARGE,
    REPO,
    emit_result,
    machine_info,
    median,
    peak_rss_mb,
    run_child,
    set_threads,
    table,
    timed,
)

MODES = ("fp32", "bf16")
SIZES = {"base": (PHOBERT_BASE, "phobert-base"), "large": (PHOBERT_LARGE, "phobert-large")}
SEQ = 64


def config_batch_and_train_size(size: str) -> tuple[int, int]:
    """The config's batch size and the number of sentences in its train split."""
    from vitopic.config import load_config

    cfg = load_config(REPO / "configs" / f"{SIZES[size][1]}.yaml", [f"data.dir={REPO / 'corpus'}"])
    lines = cfg.data.path(cfg.data.train_file).read_text("utf-8").splitlines()
    return cfg.training.batch_size, sum(1 for line in lines if line.strip())


def child(size: str, mode: str, batch: int, warmup: int, steps: int, device: str) -> None:
    """Time `steps` optimizer steps after `warmup` ones; emit the figures as JSON."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    set_threads()
    torch.manual_seed(0)
    config = RobertaConfig(**SIZES[size][0], num_labels=3, problem_type="multi_label_classification")
    model = RobertaForSequenceClassification(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(3, config.vocab_size, (batch, SEQ), device=device)
    ids[:, 0], ids[:, -1] = config.bos_token_id, config.eos_token_id
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (batch, 3), device=device).float()
    device_type = torch.device(device).type

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    def sync_step() -> float:
        loss = step()
        if device_type == "cuda":
            torch.cuda.synchronize()
        return loss

    for _ in range(warmup):
        sync_step()
    times = [timed(sync_step)[0] for _ in range(steps)]
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device_type == "cuda" else None
    emit_result(
        {
            "step_s": median(times),
            "sps": batch / median(times),
            "rss_mb": peak_rss_mb(),
            "gpu_mb": gpu,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", nargs=3, metavar=("SIZE", "MODE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, mode, batch = args.child
        return child(size, mode, int(batch), args.warmup, args.steps, args.device)

    cores = set_threads()
    print(machine_info())
    print(
        f"{SEQ} tokens per sentence, AdamW, {args.warmup} warm-up + {args.steps} timed steps "
        f"(median), torch threads {cores}, device {args.device}"
    )
    rows = []
    for size in args.sizes:
        batch, n_train = config_batch_and_train_size(size)
        results = {
            m: run_child(
                __file__,
                [
                    "--child",
                    size,
                    m,
                    str(batch),
                    "--warmup",
                    str(args.warmup),
                    "--steps",
                    str(args.steps),
                    "--device",
                    args.device,
                ],
            )
            for m in MODES
        }
        for mode, r in results.items():
            memory = f"{r['gpu_mb']:.0f} GPU" if r["gpu_mb"] else f"{r['rss_mb']:.0f}"
            rows.append(
                [
                    f"phobert-{size} ({r['params_m']:.0f} M)",
                    mode,
                    batch,
                    f"{r['step_s']:.2f}",
                    f"{r['sps']:.2f}",
                    f"{r['sps'] / results['fp32']['sps']:.2f}x",
                    memory,
                    f"{n_train / r['sps'] / 60:.0f}",
                ]
            )
    print("\n## Training step, PhoBERT-sized models (random weights)\n")
    print(
        table(
            [
                "model",
                "mode",
                "batch",
                "s/step",
                "sentences/s",
                "vs fp32",
                "peak MiB",
                "min/epoch (extrapolated)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
