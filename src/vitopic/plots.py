"""PNG plots for run reports: per-label precision-recall curves and loss curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from vitopic.files import open_replacing


def plot_pr_curves(
    scores: np.ndarray,
    references: np.ndarray,
    labels: list[str],
    thresholds: np.ndarray,
    path: str | Path,
    title: str,
) -> Path:
    """One precision-recall curve per label, with the chosen threshold marked."""
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 4), squeeze=False)
    for ax, j, label in zip(axes[0], range(len(labels)), labels, strict=True):
        truth = references[:, j].astype(bool)
        ap = f"AP {average_precision_score(truth, scores[:, j]):.3f}, " if truth.any() else ""
        ax.set_title(f"{label} ({ap}{int(truth.sum())} of {len(truth)} positive)", fontsize=10)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        if not truth.any():
            ax.text(0.5, 0.5, "no positives", ha="center")
            continue
        precision, recall, _ = precision_recall_curve(truth, scores[:, j])
        ax.plot(recall, precision)
        pred = scores[:, j] >= thresholds[j]
        tp = (pred & truth).sum()
        p = tp / pred.sum() if pred.sum() else 1.0
        r = tp / truth.sum()
        ax.scatter([r], [p], color="red", zorder=3, label=f"threshold {thresholds[j]:.2f}")
        ax.legend(loc="lower left")
    fig.suptitle(title)
    return _save(fig, path)


def plot_losses(log_history: list[dict], path: str | Path, best_step: int | None = None) -> Path:
    """Training and evaluation loss against the global step, from `Trainer.state.log_history`,
    with the step of the checkpoint kept marked."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_title("training and dev loss")
    if best_step is not None:
        ax.axvline(best_step, color="grey", linestyle="--", label=f"model kept (step {best_step})")
    for key, name in (("loss", "train"), ("eval_loss", "eval")):
        points = [(row["step"], row[key]) for row in log_history if key in row]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o" if name == "eval" else None, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    return _save(fig, path)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    """The figure as a PNG at `path`, replaced whole (see `vitopic.files`); the figure closed."""
    try:
        fig.tight_layout()
        with open_replacing(path, binary=True) as f:
            fig.savefig(f, format="png", dpi=80)
    finally:
        plt.close(fig)
    return Path(path)
