"""Baselines to set beside the transformer: keyword rules, and TF-IDF + logistic regression."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline, make_union

from vitopic.data import Example, multi_hot
from vitopic.labels import label
from vitopic.metrics import Metrics, multilabel_metrics, tune_thresholds
from vitopic.text import normalize

KEYWORD_SUFFIX = " (keyword rules)"


def keyword_metrics(examples: list[Example], labels: list[str]) -> Metrics:
    """The simple rules a model must beat: a label fires when one of its keywords appears (a label
    without a rule in `vitopic.labels` never fires)."""
    rules = [label(lab) for lab in labels]
    decided = np.array([[rule.fires(ex.text) for rule in rules] for ex in examples], dtype=bool)
    return multilabel_metrics(decided, multi_hot(examples, labels), labels)


def baseline_label(key: str) -> str:
    """How a `run_baseline` result key reads in reports: which baseline, on which split."""
    if key.endswith(KEYWORD_SUFFIX):
        return f"keyword rules, {key[: -len(KEYWORD_SUFFIX)]}"
    return f"TF-IDF+LR, {key}"


def shown_baselines(results: dict[str, Metrics]) -> tuple[dict[str, Metrics], str]:
    """The baseline results worth showing, and a note on what was left out ("" when nothing was).
    The keyword rules never fire a label without a rule, so its rows (F1 0) say nothing: they are
    left out, and the keyword results altogether when no label has a rule."""
    keyword = [key for key in results if key.endswith(KEYWORD_SUFFIX)]
    labels = list(results[keyword[0]].per_label) if keyword else []
    missing = [lab for lab in labels if label(lab).keywords is None]
    if not missing:
        return dict(results), ""
    names = ", ".join(missing)
    if len(missing) == len(labels):
        return (
            {key: r for key, r in results.items() if key not in keyword},
            f"keyword rules left out: vitopic has none for {names}",
        )
    return (
        {
            key: replace(r, per_label={lab: s for lab, s in r.per_label.items() if lab not in missing})
            if key in keyword
            else r
            for key, r in results.items()
        },
        f"no keyword rule for {names}: the rules never predict these labels; their rows are left "
        "out, their misses still count in the averages",
    )


def format_baselines(results: dict[str, Metrics], prefix: str = "") -> list[str]:
    """Each baseline result worth showing as `Metrics.format` lines, named `prefix` + which
    baseline on which split, then the note on what was left out (`shown_baselines`)."""
    shown, note = shown_baselines(results)
    return [r.format(prefix + baseline_label(key)) for key, r in shown.items()] + (
        [f"({note})"] if note else []
    )


class TfidfBaseline:
    """Word 1-2-gram and character 2-5-gram TF-IDF, one logistic regression per label,
    thresholds tuned on dev like the transformer's."""

    def __init__(self, labels: list[str], seed: int = 42):
        self.labels = list(labels)
        self.pipeline = make_pipeline(
            make_union(
                TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True),
            ),
            OneVsRestClassifier(LogisticRegression(C=10.0, max_iter=2000, random_state=seed)),
        )
        self.thresholds = np.full(len(self.labels), 0.5)

    @staticmethod
    def _texts(examples: list[Example]) -> list[str]:
        return [normalize(ex.text).lower() for ex in examples]

    def fit(self, train: list[Example], dev: list[Example]) -> TfidfBaseline:
        self.pipeline.fit(self._texts(train), multi_hot(train, self.labels))
        self.thresholds = tune_thresholds(self.scores(dev), multi_hot(dev, self.labels))
        return self

    def scores(self, examples: list[Example]) -> np.ndarray:
        return self.pipeline.predict_proba(self._texts(examples))

    def evaluate(self, examples: list[Example]) -> Metrics:
        decided = self.scores(examples) >= self.thresholds
        return multilabel_metrics(decided, multi_hot(examples, self.labels), self.labels)
