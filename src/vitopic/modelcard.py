"""The model card: `model_card.md` rendered with Hugging Face metadata and a run's metrics."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template

import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from vitopic.checkpoint import Metadata
from vitopic.config import DataConfig
from vitopic.labels import DEFAULT_LABELS, KNOWN, UNKNOWN_DESCRIPTION
from vitopic.metrics import Metrics
from vitopic.text import prepare

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


# The shipped corpus, known by its data card (corpus/README.md); the words below restate that card
# and the label registry, and the card uses them only for a model trained on that corpus.
SHIPPED_DATA_CARD = "# vitopic news-topic corpus: data card"  # the data card's first line
SHIPPED_NAME = "vitopic"
SHIPPED_DATA = (
    "the vitopic news-topic corpus, written for the project (its data card: `corpus/README.md` in "
    "the vitopic repository)"
)
SHIPPED_STANCE = (
    "The labels say **what a sentence is about, never its stance**: a sentence that praises\n"
    "and one that condemns aid to Ukraine both get `ukraine_aid`."
)
SHIPPED_LIMITATIONS = """\
- Trained on sentences about events of 2022–2025; later events, names and places may be missed.
- Labels give the topic, not the stance, sentiment or factual accuracy of a sentence.
- The training corpus was written for the project; real news is more varied, so expect lower
  scores on it than on the test split."""
OWN_LIMITATIONS = (
    "- Scored on held-out sentences of its own training data; text from other sources, periods or\n"
    "  topics may score lower."
)
# The usage examples' sentence when no sentence of the training data was recorded: raw, and as
# every segmenter prepares it.
NEUTRAL_EXAMPLE = "Quốc hội thông qua luật mới tại kỳ họp sáng nay."
NEUTRAL_PREPARED = "Quốc_hội thông_qua luật mới tại kỳ họp sáng nay ."
SEGMENTER_TOOLS = {
    "rdrsegmenter": "VnCoreNLP's RDRSegmenter",
    "pyvi": "pyvi's `ViTokenizer.tokenize`",
    "underthesea": 'underthesea\'s `word_tokenize(text, format="text")`',
}
TRAINING_SPLITS = ("dev", "test")  # results of the training data; other results are evaluated files


@dataclass(frozen=True)
class TrainingData:
    """What the card says about the data a model was trained on (metrics.json's `training.data`)."""

    name: str | None = None  # the data set's name; None: not recorded
    shipped: bool = False  # the shipped corpus and labels: the data card's and registry's words apply
    label_descriptions: dict[str, str] = field(default_factory=dict)  # the config's
    example: str = NEUTRAL_EXAMPLE  # a sentence for the usage examples, as a user passes it
    prepared: str = NEUTRAL_PREPARED  # the same sentence as the model reads it

    @classmethod
    def recorded(cls, training: dict | None) -> TrainingData:
        """The data recorded in a run's training facts (metrics.json's `training`), if any."""
        return cls(**(training or {}).get("data", {}))

    @property
    def source(self) -> str:
        """The data as the card's Training section names it."""
        if self.shipped:
            return SHIPPED_DATA
        return f"`{self.name}`" if self.name else "not recorded"

    def descriptions(self) -> dict[str, str]:
        """What each label means, by label: the registry's for the shipped corpus, the config's."""
        return {
            **({lab: KNOWN[lab].description for lab in DEFAULT_LABELS} if self.shipped else {}),
            **self.label_descriptions,
        }


def is_shipped_corpus(data: DataConfig) -> bool:
    """Whether `data` is vitopic's own corpus (its data card in data.dir, its train file) with its
    own labels: only then does the card describe the data and labels in the shipped words."""
    card = Path(data.dir) / "README.md"
    return (
        sorted(data.labels) == sorted(DEFAULT_LABELS)
        and data.train_file == DataConfig.train_file
        and card.is_file()
        and card.read_text("utf-8", errors="replace").startswith(SHIPPED_DATA_CARD)
    )


def training_data(data: DataConfig, rows: list[dict], segmenter: str) -> dict:
    """The card's facts about a run's data (for metrics.json): its name, whether it is the shipped
    corpus, the label descriptions, and a sentence of `rows` (dev predictions) for the usage
    examples: the first the model labels right with some label, else the first."""
    shipped = is_shipped_corpus(data)
    right = [r for r in rows if r["labels"] and set(r["predicted"]) == set(r["labels"])]
    example = (right or rows)[0]["text"]
    return asdict(
        TrainingData(
            name=data.name or (SHIPPED_NAME if shipped else Path(data.dir).resolve().name),
            shipped=shipped,
            label_descriptions=dict(data.label_descriptions),
            example=example,
            prepared=prepare([example], segmenter)[0],
        )
    )


def model_license(base_model: str | None, override: str | None = None) -> str:
    """The license a fine-tuned model inherits: the base model's, or the project's from scratch."""
    if override:
        return override
    if base_model is None:
        return PROJECT_LICENSE
    return BASE_LICENSES.get(base_model.rstrip("/"), "other")


def _dataset(data: TrainingData, split: str) -> dict:
    """A `model-index` result's data set: a split of the training data, or an evaluated file."""
    if data.name and split in TRAINING_SPLITS:
        return {"name": f"{data.name} {split}", "type": data.name, "split": split}
    return {"name": split, "type": "custom", "split": split}


def card_metadata(
    meta: Metadata,
    results: dict[str, Metrics],
    model_name: str,
    license_override: str | None = None,
    trained_on: TrainingData | None = None,
) -> dict:
    """Hub metadata (the YAML header), with one `model-index` entry per evaluated split."""
    trained_on = trained_on or TrainingData()
    metrics_by_split = [
        {
            "task": {"type": "text-classification", "name": "Multi-label topic classification"},
            "dataset": _dataset(trained_on, split),
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


def table_cell(text: str) -> str:
    """Text for a Markdown table cell, whole (on one line, a `|` in it escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


def _training_section(training: dict | None, data: TrainingData) -> str:
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
        f"Data: {data.source}.\n\n"
        f"Sentences: {sizes or 'not recorded'}. {training['steps']:,} optimiser steps{best} "
        f"(best dev macro-F1 at tuned thresholds).\n\nHyper-parameters: {hyper}.\n\n"
        f"Software: {versions}."
    )


def _segmentation(segmenter: str) -> tuple[str, str]:
    """How the card names the model's text preparation: its last step, and how to do it yourself."""
    if segmenter == "none":
        return (
            "no word segmentation (segmenter `none`: the training text came segmented)",
            "pass it text prepared as above and word-segmented as the training text was",
        )
    tool = SEGMENTER_TOOLS[segmenter]
    return (
        f"word segmentation with {tool} (segmenter `{segmenter}`)",
        f"prepare the text yourself as above, segmenting it with {tool}",
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
    `CARD_PLACEHOLDER`. What it says of the data comes from `training`'s `data` (`training_data`)."""
    license_id = model_license(meta.base_model, license_override)
    data = TrainingData.recorded(training)
    metadata = card_metadata(meta, results, model_name, license_override, data)
    descriptions = data.descriptions()
    segmentation, segment_howto = _segmentation(meta.segmenter)
    return Template(TEMPLATE.read_text("utf-8")).substitute(
        metadata=yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip(),
        model_name=model_name,
        base_model=f"`{meta.base_model}`"
        if meta.base_model
        else "a PhoBERT-shaped RoBERTa trained from scratch",
        stance=SHIPPED_STANCE if data.shipped else "",
        label_table="\n".join(
            ["| label | means |", "|---|---|"]
            + [
                f"| `{lab}` | {table_cell(descriptions.get(lab, UNKNOWN_DESCRIPTION))} |"
                for lab in meta.labels
            ]
        ),
        label_list=", ".join(f"`{lab}`" for lab in meta.labels),
        thresholds=", ".join(f"`{lab}` {t:.2f}" for lab, t in zip(meta.labels, meta.thresholds, strict=False))
        or "argmax",
        segmentation=segmentation,
        segment_howto=segment_howto,
        max_length=meta.max_length,
        metrics_table=_metrics_table(results, meta.labels),
        training=_training_section(training, data),
        extra_metrics=extra_metrics,
        limitations=SHIPPED_LIMITATIONS if data.shipped else OWN_LIMITATIONS,
        example=json.dumps(data.example, ensure_ascii=False),
        prepared=json.dumps(data.prepared, ensure_ascii=False),
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
