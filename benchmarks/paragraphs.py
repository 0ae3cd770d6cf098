"""Paragraphs: does scoring each sentence (predict's default) beat scoring the whole input?

    python benchmarks/paragraphs.py [--model runs/tiny] [--data corpus/test.jsonl]

Joins neighbouring sentences of a labeled file into two-sentence paragraphs (gold: the union of
their labels) and prints macro-F1 with `split="sentence"` and `split="none"`, beside the single
sentences themselves. The shipped splits and real-news-dev hold single sentences, where both
settings give identical results.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from common import FALLBACK, LABELS, TINY

from vitopic import TopicClassifier
from vitopic.data import read_jsonl
from vitopic.evaluation import evaluate_examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(TINY))
    parser.add_argument("--data", default=str(FALLBACK))
    args = parser.parse_args()
    sentences = read_jsonl(args.data, LABELS)
    pairs = [
        replace(
            a,
            id=f"{a.id}+{b.id}",
            text=f"{a.text} {b.text}",
            labels=tuple(dict.fromkeys(a.labels + b.labels)),
        )
        for a, b in zip(sentences[::2], sentences[1::2], strict=False)
    ]
    clf = TopicClassifier.from_pretrained(args.model)
    print(f"{args.data}: {len(sentences)} sentences, {len(pairs)} two-sentence paragraphs")
    print(f"{'input':<23} {'split':<9} macro-F1  " + "  ".join(f"{lab:>11}" for lab in LABELS))
    for name, examples in (("single sentences", sentences), ("two-sentence paragraphs", pairs)):
        for split in ("sentence", "none"):
            result = evaluate_examples(clf, examples, split=split)[0]
            per_label = "  ".join(f"{result.per_label[lab].f1:>11.3f}" for lab in LABELS)
            print(f"{name:<23} {split:<9} {result.macro_f1:8.3f}  {per_label}")


if __name__ == "__main__":
    main()
