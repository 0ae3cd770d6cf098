"""Training throughput with `training.group_by_length` against random batches, on the corpus's
own sentence lengths, PhoBERT-base-sized (random weights).

    python benchmarks/length_grouping.py [--rounds 3] [--steps 3] [--mode bf16|fp32]

Token lengths are those of the train split as vitopic feeds it (normalised, pyvi-segmented,
PhoBERT-format BPE of runs/tiny, <s> and </s> included). "random" batches follow a shuffled order,
as Trainer's default sampler does; "grouped" batches come from transformers' LengthGroupedSampler,
which Trainer uses for `train_sampling_strategy="group_by_length"`. Each batch is padded to its
longest sentence (DataCollatorWithPadding). Every round draws `--steps` x `--batch` sentences at
random and trains on them once in each batching (same sentences, so the same work), in an order
rotated per round, on one model; figures are medians over rounds, the ratio is taken per round.
Within a round the sampler groups only the round's sentences: with 16 batches it sorts mega-batches
of 4 batches (Trainer's epoch uses 50), so the measured gain is a lower bound; the padding columns
show both the measured batches and a whole epoch.
"""

from __future__ import annotations

import argparse

import torch
from common import (
    FALLBACK,
    PHOBERT_BASE,
    ensure_tiny,
    machine_info,
    median,
    set_threads,
    table,
    timed,
)
from transformers import RobertaConfig, RobertaForSequenceClassification
from transformers.trainer_pt_utils import LengthGroupedSampler

from vitopic.data import read_jsonl

BATCHINGS = ("random", "grouped")


def train_lengths() -> list[int]:
    """Token lengths of the train split's sentences, as predict and training encode them."""
    from vitopic.predict import TopicClassifier

    clf = TopicClassifier.from_pretrained(ensure_tiny())
    texts = [ex.text for ex in read_jsonl(FALLBACK.with_name("train.jsonl"), None)]
    return [min(len(ids), 254) + 2 for ids in clf._encode(texts)]


def batches(lengths: list[int], batching: str, size: int, seed: int = 0) -> list[list[int]]:
    """Index batches of `size` in the order the batching's sampler gives."""
    generator = torch.Generator().manual_seed(seed)
    order = (
        list(LengthGroupedSampler(size, lengths=lengths, generator=generator))
        if batching == "grouped"
        else torch.randperm(len(lengths), generator=generator).tolist()
    )
    return [order[i : i + size] for i in range(0, len(order) - size + 1, size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per batching per round")
    parser.add_argument("--batch", type=int, default=32, help="phobert-base's config batch size")
    parser.add_argument("--mode", choices=("bf16", "fp32"), default="bf16")
    args = parser.parse_args()

    cores = set_threads()
    lengths = train_lengths()
    print(machine_info())
    print(
        f"train split: {len(lengths)} sentences, mean {sum(lengths) / len(lengths):.1f} tokens; "
        f"batch {args.batch}, {args.mode}, AdamW, {args.steps} steps per batching per round, "
        f"{args.rounds} rounds, torch threads {cores}"
    )
    torch.manual_seed(0)
    config = RobertaConfig(**PHOBERT_BASE, num_labels=3, problem_type="multi_label_classification")
    model = RobertaForSequenceClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    plans = {b: batches(lengths, b, args.batch) for b in BATCHINGS}  # a whole epoch's
    generator = torch.Generator().manual_seed(1)

    def step(batch: list[int]) -> float:
        """One optimizer step; the seconds AdamW's update took."""
        width = max(lengths[i] for i in batch)
        ids = torch.randint(3, config.vocab_size, (len(batch), width))
        mask = torch.zeros_like(ids)
        for row, i in enumerate(batch):
            mask[row, : lengths[i]] = 1
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.mode == "bf16"):
            loss = model(
                input_ids=ids, attention_mask=mask, labels=torch.randint(0, 2, (len(batch), 3)).float()
            ).loss
        loss.backward()
        return timed(optimizer.step)[0]

    def run(batching: str, sample: list[int]) -> tuple[float, float]:
        """Sentences per second training once on `sample` in the batching's batches, and the
        batches' mean padded length."""
        local = batches([lengths[i] for i in sample], batching, args.batch)
        chosen = [[sample[i] for i in batch] for batch in local]
        seconds, updates = timed(lambda: [step(b) for b in chosen])
        optimizer_share[batching].append(sum(updates) / seconds)
        return len(sample) / seconds, sum(max(lengths[i] for i in b) for b in chosen) / len(chosen)

    def draw(n: int) -> list[int]:
        return torch.randperm(len(lengths), generator=generator)[:n].tolist()

    speed: dict[str, list[float]] = {b: [] for b in BATCHINGS}
    width: dict[str, list[float]] = {b: [] for b in BATCHINGS}
    optimizer_share: dict[str, list[float]] = {b: [] for b in BATCHINGS}
    for batching in BATCHINGS:
        run(batching, draw(args.batch))  # warm-up
        optimizer_share[batching].clear()
    for r in range(args.rounds):
        sample = draw(args.steps * args.batch)
        for batching in BATCHINGS[r % 2 :] + BATCHINGS[: r % 2]:
            sps, padded = run(batching, sample)
            speed[batching].append(sps)
            width[batching].append(padded)
        print(
            f"  round {r + 1}: "
            + ", ".join(f"{b} {speed[b][-1]:.2f} sentences/s (width {width[b][-1]:.0f})" for b in BATCHINGS),
            flush=True,
        )
    ratios = [g / r for g, r in zip(speed["grouped"], speed["random"], strict=True)]
    rows = []
    for batching in BATCHINGS:
        padded = sum(len(b) * max(lengths[i] for i in b) for b in plans[batching])
        real = sum(lengths[i] for b in plans[batching] for i in b)
        n = sum(map(len, plans[batching]))
        rows.append(
            [
                batching,
                f"{median(speed[batching]):.2f}",
                f"{median(width[batching]):.1f}",
                f"{100 * median(optimizer_share[batching]):.0f}",
                f"{padded / n:.1f}",
                f"{100 * (padded / real - 1):.0f}",
            ]
        )
    print(f"\n## Training throughput by batching, PhoBERT-base-sized, {args.mode}\n")
    headers = [
        "batching",
        "sentences/s (median)",
        "padded length, measured batches",
        "AdamW update share of step time %",
        "padded length, whole epoch",
        "epoch padding overhead %",
    ]
    print(table(headers, rows))
    print(
        f"\ngrouped / random, per round: median {median(ratios):.2f}x "
        f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
