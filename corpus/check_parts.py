"""Check corpus part files before they go into the splits: JSON, NFC, labels, ids, near-duplicates.

`python corpus/check_parts.py [PART.jsonl ...]` checks the named parts (default: all) against
every part in data/parts/; prints each problem as `file:line` and exits 1 if there is any.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from vitopic.data import DataError, read_jsonl
from vitopic.datacheck import near_duplicate_pairs
from vitopic.labels import DEFAULT_LABELS

PARTS = Path(__file__).parent / "parts"


def main(names: list[str]) -> int:
    targets = {Path(n).resolve() for n in names} or {p.resolve() for p in PARTS.glob("*.jsonl")}
    tagged, problems = [], []
    for path in sorted({*targets, *(p.resolve() for p in PARTS.glob("*.jsonl"))}):
        try:
            tagged += [(str(path), ex) for ex in read_jsonl(path, DEFAULT_LABELS, require_nfc=True)]
        except DataError as err:
            problems.append(str(err))
    ids = Counter(ex.id for _, ex in tagged)
    problems += [
        f"{f}:{ex.line}: id {ex.id!r} used {ids[ex.id]} times in the parts"
        for f, ex in tagged
        if ids[ex.id] > 1 and Path(f) in targets
    ]
    for (f1, e1), (f2, e2), sim in near_duplicate_pairs(tagged):
        if Path(f1) in targets or Path(f2) in targets:
            problems.append(f"{f1}:{e1.line} and {f2}:{e2.line}: near-duplicates (Jaccard {sim:.2f})")
    for path in sorted(targets):
        mine = [ex for f, ex in tagged if Path(f) == path]
        combos = Counter(",".join(sorted(ex.labels)) or "(none)" for ex in mine)
        print(
            f"{path.name}: {len(mine)} sentences; " + ", ".join(f"{k} {v}" for k, v in combos.most_common())
        )
    for p in problems:
        print("PROBLEM", p)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
