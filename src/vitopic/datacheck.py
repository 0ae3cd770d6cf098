"""`vitopic data check`: validate a corpus directory and print its counts and variety figures."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from vitopic.config import PHOBERT_MAX_LENGTH
from vitopic.data import DataError, Example, read_jsonl
from vitopic.text import normalize, prepare
from vitopic.tokenizer import phobert_tokenizer

SPLITS = ("train", "dev", "test", "showcase")
NEAR_DUPLICATE_JACCARD = 0.6
_WORD_RE = re.compile(r"\w+")


def _shingles(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    words = _WORD_RE.findall(normalize(text).lower().replace("_", " "))
    return frozenset(zip(*(words[i:] for i in range(n)), strict=False)) or frozenset([tuple(words)])


def near_duplicate_pairs(
    examples: list[tuple[str, Example]], threshold: float = NEAR_DUPLICATE_JACCARD
) -> list[tuple[tuple[str, Example], tuple[str, Example], float]]:
    """Pairs whose word-3-gram Jaccard similarity is at least `threshold` (exact copies score 1)."""
    shingles = [_shingles(ex.text) for _, ex in examples]
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, sh in enumerate(shingles):
        for s in sh:
            index[s].append(i)
    candidates = {pair for ids in index.values() if len(ids) < 200 for pair in combinations(ids, 2)}
    pairs = []
    for i, j in sorted(candidates):
        sim = len(shingles[i] & shingles[j]) / len(shingles[i] | shingles[j])
        if sim >= threshold:
            pairs.append((examples[i], examples[j], sim))
    return pairs


def distinct_bigram_ratio(texts: list[str]) -> float:
    """Unique word bigrams over all word bigrams: near 1 means little repetition."""
    bigrams = [
        b for t in texts for b in zip(*(lambda w: (w, w[1:]))(_WORD_RE.findall(t.lower())), strict=False)
    ]
    return len(set(bigrams)) / max(len(bigrams), 1)


@dataclass
class CheckReport:
    counts: dict[str, Counter] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    unshown: int = 0  # problems counted but not in `errors` (see `add`)
    within_split_near_duplicates: int = 0
    distinct_bigram_ratio: float = 0.0
    max_tokens: int = 0

    def add(self, err: DataError) -> None:
        """A file's bad rows (see `DataError`): those it names, then its "... and N more" line,
        which stands for N problems."""
        self.errors += str(err).splitlines()
        self.unshown += max(err.more - 1, 0)

    def format(self) -> str:
        """The counts table and figures (when a split was read), then every problem."""
        lines = self._table() if self.counts else []
        lines += [f"ERROR {e}" for e in self.errors]
        problems = len(self.errors) + self.unshown
        lines.append(f"{problems} problem(s)" if problems else "OK")
        return "\n".join(lines)

    def _table(self) -> list[str]:
        labels = list(dict.fromkeys(k for c in self.counts.values() for k in c))
        width = max([11, *map(len, labels)])
        lines = [f"{'split':<8} {'n':>5}  " + "  ".join(f"{lab:>{width}}" for lab in labels)]
        for split, counter in self.counts.items():
            lines.append(
                f"{split:<8} {self.sizes[split]:>5}  "
                + "  ".join(f"{counter[lab]:>{width}}" for lab in labels)
            )
        total = sum(self.sizes.values())
        return [
            *lines,
            f"total {total}; distinct-bigram ratio {self.distinct_bigram_ratio:.3f}; "
            f"near-duplicate pairs within splits {self.within_split_near_duplicates} "
            f"(rate {self.within_split_near_duplicates / max(total, 1):.4f}); "
            f"longest {self.max_tokens} tokens",
        ]


def check_corpus(
    directory: str | Path, labels: list[str], segmenter: str = "pyvi", max_tokens: int = PHOBERT_MAX_LENGTH
) -> CheckReport:
    """Validate each split file, cross-split near-duplicates and prepared token lengths."""
    directory = Path(directory)
    if not directory.is_dir():
        state = "is not a directory" if directory.exists() else "does not exist"
        raise DataError(
            f"{directory}: {state}; data check takes a corpus directory holding "
            f"{', '.join(f'{s}.jsonl' for s in SPLITS)} (showcase optional)"
        )
    report = CheckReport()
    splits: dict[str, list[Example]] = {}
    for split in SPLITS:
        path = directory / f"{split}.jsonl"
        if not path.is_file():
            if split != "showcase":
                report.errors.append(f"{path}: missing split file")
            continue
        try:
            splits[split] = read_jsonl(path, labels, require_nfc=True)
        except DataError as err:
            report.add(err)
    for split, examples in splits.items():
        report.sizes[split] = len(examples)
        counter: Counter = Counter(dict.fromkeys(labels, 0))  # the labels' order, then the rest
        counter.update(lab for ex in examples for lab in ex.labels)
        counter["(none)"] = sum(not ex.labels for ex in examples)
        counter["(2+ labels)"] = sum(len(ex.labels) >= 2 for ex in examples)
        report.counts[split] = counter
    tagged = [(split, ex) for split, examples in splits.items() for ex in examples]
    for (s1, e1), (s2, e2), sim in near_duplicate_pairs(tagged):
        if s1 != s2:
            report.errors.append(
                f"{directory / s1}.jsonl:{e1.line} and {directory / s2}.jsonl:{e2.line}: "
                f"near-duplicates across splits (Jaccard {sim:.2f})"
            )
        else:
            report.within_split_near_duplicates += 1
    report.distinct_bigram_ratio = distinct_bigram_ratio([ex.text for _, ex in tagged])
    if "train" in splits:
        prepared = {split: prepare([ex.text for ex in exs], segmenter) for split, exs in splits.items()}
        tokenizer = phobert_tokenizer()
        for split, texts in prepared.items():
            lengths = [len(ids) for ids in tokenizer(texts, verbose=False)["input_ids"]]
            report.max_tokens = max(report.max_tokens, *lengths)
            for ex, n in zip(splits[split], lengths, strict=True):
                if n > max_tokens:
                    report.errors.append(
                        f"{directory / split}.jsonl:{ex.line}: {n} tokens "
                        f"after text preparation (limit {max_tokens})"
                    )
    return report
