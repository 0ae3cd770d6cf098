"""Metrics through `evaluate` (offline, from the module shipped in the package), typed; thresholds."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import evaluate
import numpy as np

METRIC_DIR = Path(__file__).parent / "metric_modules" / "multilabel_f1"
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


@functools.cache
def _metric() -> evaluate.EvaluationModule:
    return evaluate.load(str(METRIC_DIR))


@dataclass(frozen=True)
class LabelScores:
    """One label's precision, recall and F1, its support (gold positives) and confusion counts."""

    precision: float
    recall: float
    f1: float
    support: int
    tp: int
    fp: int
    fn: int
    tn: int


@dataclass(frozen=True)
class Metrics:
    """What the shipped `multilabel_f1` metric computes; `to_dict` is its JSON shape (metrics.json,
    eval-*.json), field for field and in its order."""

    micro_f1: float
    macro_f1: float
    exact_match: float
    per_label: dict[str, LabelScores]

    @classmethod
    def from_dict(cls, result: dict) -> Metrics:
        """From the metric's result, or the same dict read back from JSON."""
        return cls(
            result["micro_f1"],
            result["macro_f1"],
            result["exact_match"],
            {name: LabelScores(**scores) for name, scores in result["per_label"].items()},
        )

    def to_dict(self) -> dict:
        """The metric's own dict: what metrics.json and eval-*.json hold."""
        return asdict(self)

    def format(self, name: str) -> str:
        """A plain-text summary, macro-F1 named as such."""
        lines = [
            f"{name}: macro-F1 {self.macro_f1:.4f}  micro-F1 {self.micro_f1:.4f}  "
            f"exact-match {self.exact_match:.4f}"
        ]
        for label, m in self.per_label.items():
            lines.append(
                f"  {label:<12} P {m.precision:.3f}  R {m.recall:.3f}  F1 {m.f1:.3f}  "
                f"(tp {m.tp} fp {m.fp} fn {m.fn} tn {m.tn}, support {m.support})"
            )
        return "\n".join(lines)


def multilabel_metrics(predicted: np.ndarray, references: np.ndarray, labels: list[str]) -> Metrics:
    """Micro/macro F1, per-label P/R/F1 and confusion counts, exact match, for multi-hot arrays."""
    return Metrics.from_dict(
        _metric().compute(
            predictions=np.asarray(predicted, dtype=np.int8).tolist(),
            references=np.asarray(references, dtype=np.int8).tolist(),
            label_names=list(labels),
        )
    )


def _f1_at(scores: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """F1 of one label for each candidate threshold."""
    pred = scores[None, :] >= thresholds[:, None]
    tp = (pred & truth[None, :]).sum(1)
    fp = (pred & ~truth[None, :]).sum(1)
    fn = (~pred & truth[None, :]).sum(1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def tune_thresholds(scores: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per-label threshold from (dev) data: of the thresholds whose F1 is within 1/positives of the
    best (about two errors' worth), the one nearest 0.5.

    An overconfident model's F1 is flat over a wide range of thresholds; the exact maximum is then
    decided by one or two dev sentences and can sit far from 0.5 (0.05 was seen), which costs
    precision on other text. A label with no positives in the data keeps 0.5.
    """
    truth = np.asarray(references, dtype=bool)
    out = np.full(scores.shape[1], 0.5)
    for j in range(scores.shape[1]):
        positives = int(truth[:, j].sum())
        if not positives:
            continue
        f1 = _f1_at(scores[:, j], truth[:, j], THRESHOLD_GRID)
        near = np.flatnonzero(f1 >= f1.max() - 1.0 / positives)
        out[j] = THRESHOLD_GRID[near[np.argmin(np.abs(THRESHOLD_GRID[near] - 0.5))]]
    return out
