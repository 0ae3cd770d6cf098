"""One optimizer step (forward + backward + AdamW) of the PhoBERT-base-sized model: fp32 vs bf16 autocast.

    python benchmarks/training_step.py

Batch 16 x 64 tokens of random ids, multi-hot BCE loss (the model's own multi_label loss), each
mode in a fresh subprocess so peak RSS is per mode.
"""

from __future__ import annotations

import argparse

from common import (
    base_checkpoint,
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
BATCH, SEQ = 16, 64


def child(mode: str, warmup: int, steps: int) -> None:
    """Time `steps` optimizer steps after `warmup` ones; emit the figures as JSON."""
    import torch
    from transformers import AutoModelForSequenceClassification

    set_threads()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base_checkpoint(), use_safetensors=True)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(3, model.config.vocab_size, (BATCH, SEQ))
    ids[:, 0], ids[:, -1] = model.config.bos_token_id, model.config.eos_token_id
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (BATCH, model.config.num_labels)).float()

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(warmup):
        step()
    times = [timed(step)[0] for _ in range(steps)]
    emit_result({"mode": mode, "step_s": median(times), "sps": BATCH / median(times),
                 "rss_mb": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.mode:
        return child(args.mode, args.warmup, args.steps)

    cores = set_threads()
    print(machine_info())
    print(f"batch {BATCH} x seq {SEQ}, AdamW, {args.warmup} warm-up + {args.steps} timed steps "
          f"(median), torch threads {cores}")
    base_checkpoint()
    results = {m: run_child(__file__, ["--mode", m, "--warmup", str(args.warmup),
                                       "--steps", str(args.steps)]) for m in MODES}
    fp32 = results["fp32"]["sps"]
    rows = [[m, f"{r['step_s']:.2f}", f"{r['sps']:.2f}", f"{r['sps'] / fp32:.2f}x", f"{r['rss_mb']:.0f}"]
            for m, r in results.items()]
    print("\n## Training step, PhoBERT-base-sized model\n")
    print(table(["mode", "s/step", "sentences/s", "vs fp32", "peak RSS MiB"], rows))
    print(f"\nbf16/fp32 throughput ratio={results['bf16']['sps'] / fp32:.2f}")


if __name__ == "__main__":
    main()
