"""The network: PhoBERT (pretrained) or a small PhoBERT-shaped RoBERTa built from scratch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import (
    PhobertTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from vitopic.config import PHOBERT_MAX_LENGTH, Config
from vitopic.options import NONE_CLASS

if TYPE_CHECKING:
    from vitopic.base_model import BaseModel


def class_names(labels: list[str], mode: str) -> list[str]:
    """The model's output classes: the labels, plus `none` first in single_label mode."""
    return [NONE_CLASS, *labels] if mode == "single_label" else list(labels)


def head_config(labels: list[str], mode: str) -> dict:
    """`config.json` fields that make the checkpoint self-describing in plain transformers."""
    names = class_names(labels, mode)
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {name: i for i, name in enumerate(names)},
        "problem_type": "multi_label_classification"
        if mode == "multi_label"
        else "single_label_classification",
    }


def build_model(
    cfg: Config, tokenizer: PreTrainedTokenizerBase, base: BaseModel | None = None
) -> PreTrainedModel:
    """A classification model for `cfg`: fine-tune `base` (a fetched pretrained model) or build
    a PhoBERT-shaped one from scratch."""
    head = head_config(cfg.data.labels, cfg.model.mode)
    torch.manual_seed(cfg.training.seed)  # the new head's (and a scratch model's) initial weights
    if base is not None:
        return base.classifier(**head)
    m = cfg.model
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=m.hidden_size,
        num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads,
        intermediate_size=m.intermediate_size,
        hidden_dropout_prob=m.dropout,
        attention_probs_dropout_prob=m.dropout,
        max_position_embeddings=PHOBERT_MAX_LENGTH + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tokenizer_class=PhobertTokenizer.__name__,
        **head,
    )
    return RobertaForSequenceClassification(config)


def scores_from_logits(logits: np.ndarray, mode: str) -> np.ndarray:
    """Per-class probabilities: sigmoid for multi_label, softmax for single_label."""
    logits = np.asarray(logits, dtype=np.float64)
    if mode == "multi_label":
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def decide(scores: np.ndarray, mode: str, thresholds: np.ndarray) -> np.ndarray:
    """Multi-hot decisions over the real labels from per-class scores.

    multi_label: score >= the label's threshold. single_label: the argmax class (none -> no label).
    """
    if mode == "multi_label":
        return scores >= thresholds
    winner = scores.argmax(-1)
    out = np.zeros((len(scores), scores.shape[1] - 1), dtype=bool)
    rows = np.nonzero(winner > 0)[0]
    out[rows, winner[rows] - 1] = True
    return out


def label_scores(scores: np.ndarray, mode: str) -> np.ndarray:
    """The probability of each real label (drops single_label's `none` column)."""
    return scores if mode == "multi_label" else scores[:, 1:]
