"""The label mode as one object: how labels become classes, training targets, scores and decisions.

`head_for(mode)` is the only place a mode name turns into behaviour; numpy only, no torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from vitopic.options import MODES, NONE_CLASS, Mode


class Head(ABC):
    """One label mode: its classes, targets, probabilities and decisions over the real labels."""

    mode: ClassVar[Mode]
    problem_type: ClassVar[str]  # config.json's, so plain transformers picks the matching loss
    implicit: ClassVar[tuple[str, ...]]  # classes before the labels; reserved as label names
    uses_thresholds: ClassVar[bool]  # per-label thresholds, tuned on dev and overridable in predict
    takes_pos_weight: ClassVar[bool]  # whether `training.pos_weight` reweights the loss

    def class_names(self, labels: Sequence[str]) -> list[str]:
        """The model's output classes: the implicit ones, then the labels."""
        return [*self.implicit, *labels]

    def reserved(self, labels: Sequence[str]) -> str | None:
        """The first label that names one of this mode's implicit classes, if any."""
        return next((name for name in self.implicit if name in labels), None)

    def default_thresholds(self, n_labels: int) -> list[float]:
        """The thresholds a checkpoint starts with, before tuning."""
        return [0.5] * n_labels if self.uses_thresholds else []

    def label_scores(self, scores: np.ndarray) -> np.ndarray:
        """The probability of each real label (drops the implicit classes' columns)."""
        return scores[:, len(self.implicit) :]

    @abstractmethod
    def targets(self, multi_hot: np.ndarray) -> list:
        """Training targets (Trainer's `labels`) from multi-hot rows."""

    @abstractmethod
    def references(self, label_ids: np.ndarray, n_labels: int) -> np.ndarray:
        """Multi-hot bool rows back from Trainer's `label_ids`."""

    @abstractmethod
    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Per-class probabilities from logits."""

    @abstractmethod
    def decide(self, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """Multi-hot bool decisions over the real labels from per-class probabilities."""


class MultiLabelHead(Head):
    """Independent labels: sigmoid per label, each on at or above its own threshold."""

    mode = "multi_label"
    problem_type = "multi_label_classification"
    implicit = ()
    uses_thresholds = True
    takes_pos_weight = True

    def targets(self, multi_hot: np.ndarray) -> list:
        return np.asarray(multi_hot, dtype=np.float32).tolist()

    def references(self, label_ids: np.ndarray, n_labels: int) -> np.ndarray:
        return np.asarray(label_ids).astype(bool)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))

    def decide(self, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        return scores >= thresholds


class SingleLabelHead(Head):
    """At most one label: softmax over `none` (first) and the labels; the most probable class wins."""

    mode = "single_label"
    problem_type = "single_label_classification"
    implicit = (NONE_CLASS,)
    uses_thresholds = False
    takes_pos_weight = False

    def targets(self, multi_hot: np.ndarray) -> list:
        """Class 0 (`none`) for a row without labels, else the class of its first label."""
        return [int(np.argmax(row)) + 1 if row.any() else 0 for row in np.asarray(multi_hot)]

    def references(self, label_ids: np.ndarray, n_labels: int) -> np.ndarray:
        return np.eye(n_labels + 1, dtype=bool)[np.asarray(label_ids).astype(int)][:, 1:]

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        logits = np.asarray(logits, dtype=np.float64)
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted / shifted.sum(-1, keepdims=True)

    def decide(self, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """The argmax class; `none` winning means no label. `thresholds` are not used."""
        winner = scores.argmax(-1)
        out = np.zeros((len(scores), scores.shape[1] - 1), dtype=bool)
        rows = np.nonzero(winner > 0)[0]
        out[rows, winner[rows] - 1] = True
        return out


_HEADS: dict[str, Head] = {head.mode: head for head in (MultiLabelHead(), SingleLabelHead())}


def head_for(mode: str) -> Head:
    """The head of a label mode; ValueError for a name that is not one."""
    try:
        return _HEADS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}") from None
