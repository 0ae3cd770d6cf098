"""Build train/dev/test (about 80/10/10) from the hand-written parts in corpus/parts/.

Near-duplicates (word-3-gram Jaccard >= 0.6) are grouped and land in one split together;
groups are stratified by label combination. Deterministic: `python corpus/make_splits.py`.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

from vitopic.data import read_jsonl
from vitopic.datacheck import near_duplicate_pairs
from vitopic.labels import DEFAULT_LABELS

DATA = Path(__file__).parent
FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}


def main(seed: int = 13) -> None:
    examples = [
        ex
        for part in sorted((DATA / "parts").glob("*.jsonl"))
        for ex in read_jsonl(part, DEFAULT_LABELS, require_nfc=True)
    ]
    parent = list(range(len(examples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    position = {id(ex): i for i, ex in enumerate(examples)}
    for (_, a), (_, b), _ in near_duplicate_pairs([("all", ex) for ex in examples]):
        parent[find(position[id(a)])] = find(position[id(b)])
    groups: dict[int, list] = defaultdict(list)
    for i, ex in enumerate(examples):
        groups[find(i)].append(ex)
    by_combo: dict[tuple, list[list]] = defaultdict(list)
    for members in groups.values():
        by_combo[tuple(sorted(members[0].labels))].append(members)

    rng = random.Random(seed)
    splits: dict[str, list] = {name: [] for name in FRACTIONS}
    for combo in sorted(by_combo):
        bucket = by_combo[combo]
        rng.shuffle(bucket)
        n = len(bucket)
        n_dev = n_test = max(1, round(n * FRACTIONS["dev"]))
        for name, chunk in (
            ("dev", bucket[:n_dev]),
            ("test", bucket[n_dev : n_dev + n_test]),
            ("train", bucket[n_dev + n_test :]),
        ):
            splits[name].extend(ex for members in chunk for ex in members)
    for name, rows in splits.items():
        rows.sort(key=lambda ex: ex.id)
        with open(DATA / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for ex in rows:
                record = {"id": ex.id, "text": ex.text, "labels": sorted(ex.labels)}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)}")


if __name__ == "__main__":
    main()
