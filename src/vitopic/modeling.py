"""The network: PhoBERT (pretrained) or a small PhoBERT-shaped RoBERTa built from scratch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import (
    PhobertTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from vitopic.config import PHOBERT_MAX_LENGTH, ModelConfig

if TYPE_CHECKING:
    from vitopic.base_model import BaseModel
    from vitopic.heads import Head


def head_config(labels: list[str], head: Head) -> dict:
    """`config.json` fields that make the checkpoint self-describing in plain transformers."""
    names = head.class_names(labels)
    return {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {name: i for i, name in enumerate(names)},
        "problem_type": head.problem_type,
    }


def build_model(
    model: ModelConfig,
    labels: list[str],
    seed: int,
    tokenizer: PreTrainedTokenizerBase,
    base: BaseModel | None = None,
) -> PreTrainedModel:
    """A classifier over `labels` in `model.mode`: fine-tune `base` (a fetched pretrained model) or
    build a PhoBERT-shaped one from scratch, shaped per `model`."""
    fields = head_config(labels, model.head)
    torch.manual_seed(seed)  # the new head's (and a scratch model's) initial weights
    if base is not None:
        network = base.classifier(
            **fields, hidden_dropout_prob=model.dropout, attention_probs_dropout_prob=model.dropout
        )
        network.get_input_embeddings().weight.requires_grad_(not model.freeze_embeddings)
        return network
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=model.hidden_size,
        num_hidden_layers=model.num_hidden_layers,
        num_attention_heads=model.num_attention_heads,
        intermediate_size=model.intermediate_size,
        hidden_dropout_prob=model.dropout,
        attention_probs_dropout_prob=model.dropout,
        max_position_embeddings=PHOBERT_MAX_LENGTH + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tokenizer_class=PhobertTokenizer.__name__,
        **fields,
    )
    return RobertaForSequenceClassification(config)
