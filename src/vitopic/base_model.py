"""The pretrained model a run fine-tunes (a `vinai/phobert-*` repo or a local dir), fetched safely.

Policy: only the files a fine-tune needs are fetched (`config.json`, the weights, `vocab.txt`,
`bpe.codes`); the repo's `tokenization_*.py`, `tokenizer.json`, TF and Flax weights never are, and
nothing runs remote code. Weights are `model.safetensors` where the revision has them; otherwise
`pytorch_model.bin` (all the Hub's `vinai/phobert-*` repos hold on `main`), read through torch's
weights-only unpickler, which admits tensors and plain containers only and refuses any pickle that
would run code. This applies to base models alone: vitopic's own checkpoints load as safetensors only.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForSequenceClassification, PhobertTokenizer, PreTrainedModel

from vitopic.checkpoint import CONFIG_FILE, PICKLE_WEIGHTS, SAFE_WEIGHTS, TOKENIZER_FILES
from vitopic.errors import VitopicError
from vitopic.hub import HubError, download_file, where
from vitopic.quiet import no_progress_bars, quiet
from vitopic.tokenizer import phobert_tokenizer

WEIGHTS = {"safetensors": SAFE_WEIGHTS, "pickle": PICKLE_WEIGHTS}


class BaseModelError(VitopicError, OSError):
    """The base model cannot be fetched or loaded safely; the message says what to do next."""


@dataclass(frozen=True)
class BaseModel:
    """A base model's files in one local directory, and which weights format they hold."""

    name: str
    revision: str | None
    directory: Path
    weights: Literal["safetensors", "pickle"]

    def tokenizer(self, max_length: int) -> PhobertTokenizer:
        """PhoBERT's tokenizer, built from `vocab.txt` + `bpe.codes` alone, limited to `max_length`."""
        return phobert_tokenizer(self.directory, max_length)

    def classifier(self, **head) -> PreTrainedModel:
        """The encoder with a fresh classification head (`head`: num_labels, id2label, ...).

        transformers' load report (the LM head left out, the new head initialised: always so for a
        base model) and progress bar are not printed; an encoder tensor the weights lack is a
        BaseModelError instead.
        """
        try:
            with quiet("transformers"), no_progress_bars():
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    self.directory,
                    use_safetensors=self.weights == "safetensors",
                    weights_only=True,
                    trust_remote_code=False,
                    ignore_mismatched_sizes=True,
                    dtype=torch.float32,  # weights stored in fp16 (as the mini-PhoBERT's are) train in fp32
                    output_loading_info=True,
                    **head,
                )
        except pickle.UnpicklingError as err:
            raise BaseModelError(
                f"{where(self.name, self.revision)}: pytorch_model.bin holds objects beyond tensors "
                "(a pickle that would run code when loaded); refused, nothing in it was executed. Use "
                "a revision with model.safetensors (model.revision=...) or a trusted conversion."
            ) from err
        missing = [key for key in info["missing_keys"] if not key.startswith("classifier.")]
        if missing:
            raise BaseModelError(
                f"{where(self.name, self.revision)}: its weights lack {len(missing)} of the encoder's "
                f"tensors (first: {missing[0]}); not a RoBERTa/PhoBERT checkpoint of this config.json"
            )
        return model


def fetch_base_model(name_or_path: str, revision: str | None = None) -> BaseModel:
    """Resolve a local dir or Hub id to a `BaseModel`; a `BaseModelError` names any problem."""
    local = Path(name_or_path)
    if local.is_dir():

        def get(name: str, optional: bool = False) -> Path | None:
            if (local / name).is_file():
                return local / name
            if optional:
                return None
            raise BaseModelError(f"{local}: {name} not found{_needs(name)}")
    else:

        def get(name: str, optional: bool = False) -> Path | None:
            try:
                return download_file(name_or_path, revision, name, optional, _needs(name))
            except HubError as err:
                raise BaseModelError(str(err)) from err

    for name in (CONFIG_FILE, *TOKENIZER_FILES):
        directory = get(name).parent
    for fmt, (single, index) in WEIGHTS.items():
        if get(single, optional=True):
            return BaseModel(str(name_or_path), revision, directory, fmt)
        if index_path := get(index, optional=True):
            for shard in sorted(set(json.loads(index_path.read_text("utf-8"))["weight_map"].values())):
                get(shard)
            return BaseModel(str(name_or_path), revision, directory, fmt)
    raise BaseModelError(
        f"{where(name_or_path, revision)}: no model.safetensors or "
        "pytorch_model.bin at this revision; set model.revision to one that holds "
        "the weights"
    )


def _needs(name: str) -> str:
    return " (PhoBERT's tokenizer needs vocab.txt and bpe.codes)" if name in TOKENIZER_FILES else ""
