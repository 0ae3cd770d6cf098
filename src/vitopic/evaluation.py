"""Evaluating a trained classifier on labeled examples, with metrics, plots and a report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from vitopic.data import Example, multi_hot
from vitopic.files import write_json
from vitopic.metrics import Metrics, multilabel_metrics
from vitopic.options import Split
from vitopic.plots import plot_pr_curves
from vitopic.predict import TopicClassifier
from vitopic.progress import Progress

EVALUATE_CHUNK = 1024  # texts predicted between two progress updates


def evaluate_examples(
    clf: TopicClassifier,
    examples: list[Example],
    batch_size: int = 32,
    progress: bool = False,
    split: Split = "sentence",
) -> tuple[Metrics, np.ndarray, np.ndarray, list[dict]]:
    """Metrics (with the classifier's own thresholds), scores, targets and per-example rows.
    `progress`: shown in texts (see `vitopic.progress`), EVALUATE_CHUNK texts at a time."""
    predictions = []
    with Progress("evaluate", len(examples), "texts", enabled=progress) as shown:
        for start in range(0, len(examples), EVALUATE_CHUNK):
            chunk = [ex.text for ex in examples[start : start + EVALUATE_CHUNK]]
            predictions += clf.predict(chunk, batch_size=batch_size, split=split)
            shown.update(len(chunk))
    labels = clf.labels
    scores = np.array([[p.scores[lab] for lab in labels] for p in predictions])
    decided = np.array([[lab in p.labels for lab in labels] for p in predictions])
    targets = multi_hot(examples, labels)
    rows = [
        {
            "id": ex.id,
            "text": ex.text,
            "labels": list(ex.labels),
            "predicted": p.labels,
            "scores": p.scores,
        }
        for ex, p in zip(examples, predictions, strict=True)
    ]
    return multilabel_metrics(decided, targets, labels), scores, targets, rows


def write_evaluation(
    out_dir: str | Path,
    name: str,
    clf: TopicClassifier,
    result: Metrics,
    scores: np.ndarray,
    targets: np.ndarray,
    rows: list[dict],
) -> Path:
    """`eval-NAME.json` (metrics + per-example predictions) and `plots/eval-NAME.png`: names a
    training run never writes (its own are `plots/pr-dev.png`, `plots/loss.png`)."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    plot_pr_curves(
        scores,
        targets,
        clf.labels,
        clf.thresholds,
        evaluation_plot(out_dir, name),
        f"precision-recall on {name}",
    )
    return write_json(out_dir / f"eval-{name}.json", {"metrics": result.to_dict(), "predictions": rows})


def evaluation_plot(out_dir: Path, name: str) -> Path:
    """Where `write_evaluation` puts the precision-recall plot of an evaluation on `name`."""
    return out_dir / "plots" / f"eval-{name}.png"


DEGENERATE_SHARE = 0.9


def quality_warnings(dev: Metrics, dev_rows: list[dict], tfidf_dev: Metrics | None) -> list[str]:
    """Why a trained model is not worth using, if it is not: it loses to the TF-IDF baseline on
    dev, or it gives one label set to nearly every dev sentence."""
    warnings = []
    if tfidf_dev is not None and dev.macro_f1 < tfidf_dev.macro_f1:
        warnings.append(
            f"dev macro-F1 {dev.macro_f1:.3f} is below the TF-IDF + LR baseline's {tfidf_dev.macro_f1:.3f}"
        )
    if dev_rows:
        labels, count = Counter(tuple(r["predicted"]) for r in dev_rows).most_common(1)[0]
        if count >= DEGENERATE_SHARE * len(dev_rows):
            warnings.append(
                f"{count / len(dev_rows):.0%} of dev sentences get the same labels "
                f"({', '.join(labels) or 'none'})"
            )
    return warnings
