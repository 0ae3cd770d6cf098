"""The model card: `model_card.md` rendered with Hugging Face metadata and a run's metrics."""

from __future__ import annotations

from pathlib import Path
from string import Template

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from vitopic.checkpoint import Metadata
from vitopic.labels import label
from vitopic.metrics import Metrics

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
CARD_PLACEHOLDER = "ORG/NAME"  # the usage examples' model id until the card is pushed
PROJECT_LICENSE = "mit"
BASE_LICENSES = {
    "vinai/phobert-base": "mit",
    "vinai/phobert-large": "mit",
    "vinai/phobert-base-v2": "agpl-3.0",
}
LICENSE_NOTES = {
    "mit": "MIT: the license of PhoBERT-base and PhoBERT-large, and of vitopic itself (which "
    "applies to a model trained from scratch).",
    "agpl-3.0": "PhoBERT-base-v2 is released under AGPL-3.0, so models fine-tuned from it are too: "
    "serving it over a network obliges you to offer the source.",
}


def model_license(base_model: str | None, override: str | None = None) -> str:
    """The license a fine-tuned model inherits: the base model's, or the project's from scratch."""
    if override:
        return override
    if base_model is None:
        return PROJECT_LICENSE
    return BASE_LICENSES.get(base_model.rstrip("/"), "other")


def card_metadata(
    meta: Metadata, results: dict[str, Metrics], model_name: str, license_override: str | None = None
) -> dict:
    """Hub metadata (the YAML header), with one `model-index` entry per evaluated split."""
    metrics_by_split = [
        {
            "task": {"type": "text-classification", "name": "Multi-label topic classification"},
            "dataset": {"name": f"vitopic {split}", "type": "vitopic", "split": split},
            "metrics": [
                {
                    "type": "f1",
                    "name": "macro F1",
                    "value": round(r.macro_f1, 4),
                    "args": {"average": "macro"},
                },
                {
                    "type": "f1",
                    "name": "micro F1",
                    "value": round(r.micro_f1, 4),
                    "args": {"average": "micro"},
                },
                {"type": "exact_match", "name": "exact match", "value": round(r.exact_match, 4)},
            ],
        }
        for split, r in results.items()
    ]
    data = {
        "language": ["vi"],
        "license": model_license(meta.base_model, license_override),
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["vitopic", "phobert", "multi-label", "news", "topic-classification"],
    }
    if meta.base_model:
        data["base_model"] = meta.base_model
    if metrics_by_split:
        data["model-index"] = [{"name": model_name, "results": metrics_by_split}]
    return data


def _metrics_table(results: dict[str, Metrics], labels: list[str]) -> str:
    if not results:
        return "No evaluation results were recorded."
    head = (
        "| split | macro F1 | micro F1 | exact match | "
        + " | ".join(f"{lab} P / R / F1" for lab in labels)
        + " |"
    )
    rows = [head, "|" + "---|" * (4 + len(labels))]
    for split, r in results.items():
        cells = [
            f"{s.precision:.3f} / {s.recall:.3f} / {s.f1:.3f}" for s in (r.per_label[lab] for lab in labels)
        ]
        rows.append(
            f"| {split} | {r.macro_f1:.3f} | {r.micro_f1:.3f} | "
            f"{r.exact_match:.3f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(rows)


def _training_section(training: dict | None) -> str:
    if not training:
        return "Not recorded for this checkpoint."
    sizes = ", ".join(f"{split} {n:,}" for split, n in training["data_sizes"].items())
    hyper = ", ".join(f"`{key}` {value}" for key, value in training["hyperparameters"].items())
    versions = ", ".join(f"{name} {v}" for name, v in training["versions"].items())
    best = (
        f"; the checkpoint kept is from step {training['best_step']}"
        if training.get("best_step") is not None
        else ""
    )
    return (
        f"Sentences: {sizes or 'not recorded'}. {training['steps']:,} optimiser steps{best} "
        f"(best dev macro-F1 at tuned thresholds).\n\nHyper-parameters: {hyper}.\n\n"
        f"Software: {versions}."
    )


def render_card(
    meta: Metadata,
    results: dict[str, Metrics],
    model_name: str,
    license_override: str | None = None,
    extra_metrics: str = "",
    training: dict | None = None,
) -> str:
    """The README.md written beside the weights; `push-to-hub` puts the repo id in place of
    `CARD_PLACEHOLDER`."""
    license_id = model_license(meta.base_model, license_override)
    metadata = card_metadata(meta, results, model_name, license_override)
    return Template(TEMPLATE.read_text("utf-8")).substitute(
        metadata=yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip(),
        model_name=model_name,
        base_model=f"`{meta.base_model}`"
        if meta.base_model
        else "a PhoBERT-shaped RoBERTa trained from scratch",
        label_table="\n".join(
            ["| label | means |", "|---|---|"]
            + [f"| `{lab}` | {label(lab).description} |" for lab in meta.labels]
        ),
        label_list=", ".join(f"`{lab}`" for lab in meta.labels),
        thresholds=", ".join(f"`{lab}` {t:.2f}" for lab, t in zip(meta.labels, meta.thresholds, strict=False))
        or "argmax",
        segmenter=meta.segmenter,
        max_length=meta.max_length,
        metrics_table=_metrics_table(results, meta.labels),
        training=_training_section(training),
        extra_metrics=extra_metrics,
        repo_id=CARD_PLACEHOLDER,
        license_name=license_id,
        license_note=LICENSE_NOTES.get(license_id, ""),
    )


def validate_card(text: str) -> list[str]:
    """Problems with a card's Hub metadata, checked offline (empty when it is valid)."""
    problems = []
    try:
        data = ModelCard(text).data.to_dict()
    except (ValueError, yaml.YAMLError) as err:
        return [f"unreadable metadata: {err}"]
    for key in ("language", "license", "pipeline_tag"):
        if not data.get(key):
            problems.append(f"missing {key}")
    if data.get("pipeline_tag") not in (None, "text-classification"):
        problems.append("pipeline_tag must be text-classification")
    if "model-index" in data:
        try:
            model_index_to_eval_results(data["model-index"])
        except (KeyError, TypeError, ValueError) as err:
            problems.append(f"invalid model-index: {err}")
    else:
        problems.append("missing model-index")
    return problems
