"""Multi-label classification metrics, shipped with vitopic so that `evaluate` works offline."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """Micro and macro F1, per-label precision/recall/F1, exact-match ratio and per-label
confusion counts (tp, fp, fn, tn) for multi-hot predictions against multi-hot references."""

_INPUTS = """
Args:
    predictions: list of multi-hot lists (0/1), one per example.
    references: list of multi-hot lists (0/1), one per example.
    label_names: optional names of the columns; defaults to "0", "1", ...
Returns:
    dict with micro_f1, macro_f1, exact_match, and per_label {name: {precision, recall, f1,
    support, tp, fp, fn, tn}}.
"""


def _f1(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class MultilabelF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.List(datasets.Value("int8")),
                    "references": datasets.List(datasets.Value("int8")),
                }
            ),
        )

    def _compute(self, predictions, references, label_names=None):
        pred = np.asarray(predictions, dtype=bool)
        ref = np.asarray(references, dtype=bool)
        names = list(label_names) if label_names else [str(i) for i in range(ref.shape[1])]
        tp = (pred & ref).sum(0)
        fp = (pred & ~ref).sum(0)
        fn = (~pred & ref).sum(0)
        tn = (~pred & ~ref).sum(0)
        per_label = {}
        for i, name in enumerate(names):
            precision, recall, f1 = _f1(tp[i], fp[i], fn[i])
            per_label[name] = {
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": int(ref[:, i].sum()),
                "tp": int(tp[i]),
                "fp": int(fp[i]),
                "fn": int(fn[i]),
                "tn": int(tn[i]),
            }
        return {
            "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())[2]),
            "macro_f1": float(np.mean([v["f1"] for v in per_label.values()])),
            "exact_match": float((pred == ref).all(1).mean()),
            "per_label": per_label,
        }
