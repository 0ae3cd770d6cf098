"""Checkpoint files: vitopic's metadata beside an ordinary transformers checkpoint, and safe resolution.

`vitopic.json` holds what plain transformers does not know (text preparation, thresholds). It is
written last, atomically, so its presence marks a finished checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from vitopic import __version__
from vitopic.errors import VitopicError
from vitopic.modeling import class_names

METADATA_FILE = "vitopic.json"
METRICS_FILE = "metrics.json"
QUALITY_WARNINGS = "quality_warnings"  # metrics.json key: why training flagged the model
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# What a checkpoint consists of; everything else in a run directory (trainer checkpoints,
# reports, plots) stays out of downloads and uploads.
CHECKPOINT_PATTERNS = [
    "config.json", "model.safetensors", "model*.safetensors", "model.safetensors.index.json",
    "vocab.txt", "bpe.codes", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", METADATA_FILE, "README.md", "model.onnx", "model.int8.onnx",
]


class CheckpointError(VitopicError, ValueError):
    """A checkpoint that is unfinished, unsafe or inconsistent."""


@dataclass
class Metadata:
    labels: list[str]
    mode: str
    segmenter: str
    max_length: int
    thresholds: list[float]
    base_model: str | None = None
    base_revision: str | None = None
    vitopic_version: str = field(default=__version__)

    def save(self, directory: str | Path) -> Path:
        """Write atomically (temp file + rename): a reader never sees half a file."""
        path = Path(directory) / METADATA_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n", "utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Metadata:
        """Read and cross-check against `config.json`; raise CheckpointError on any mismatch."""
        directory = Path(directory)
        path = directory / METADATA_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{directory}: no {METADATA_FILE}; this is not a finished vitopic checkpoint "
                "(training may have been interrupted)"
            )
        try:
            meta = cls(**json.loads(path.read_text("utf-8")))
        except (json.JSONDecodeError, TypeError) as err:
            raise CheckpointError(f"{path}: unreadable vitopic metadata ({err})") from err
        config = json.loads((directory / "config.json").read_text("utf-8"))
        expected = class_names(meta.labels, meta.mode)
        id2label = config.get("id2label", {})
        actual = [id2label.get(str(i)) for i in range(len(id2label))]
        if actual != expected:
            raise CheckpointError(
                f"{path}: labels {expected} disagree with config.json id2label {actual}"
            )
        if meta.mode == "multi_label" and len(meta.thresholds) != len(meta.labels):
            raise CheckpointError(f"{path}: {len(meta.thresholds)} thresholds for "
                                  f"{len(meta.labels)} labels")
        return meta


def open_checkpoint(directory: str | Path) -> Metadata:
    """Check a checkpoint dir is safe, finished and consistent; return its metadata.

    Refuses pickle-only weights (they can run arbitrary code), unfinished runs (no vitopic.json)
    and metadata that disagrees with config.json.
    """
    directory = Path(directory)
    has_safe = any((directory / name).is_file() for name in SAFE_WEIGHTS)
    if not has_safe and any((directory / name).is_file() for name in PICKLE_WEIGHTS):
        raise CheckpointError(
            f"{directory}: only pickle weights (pytorch_model.bin) found; vitopic loads "
            "safetensors only. Convert with `model.save_pretrained(dir, safe_serialization=True)` "
            "in a trusted environment."
        )
    metadata = Metadata.load(directory)
    if not has_safe:
        raise CheckpointError(
            f"{directory}: no model.safetensors found (vitopic loads safetensors weights only)"
        )
    return metadata


def load_model(directory: str | Path) -> PreTrainedModel:
    """The classification model of a checkpoint dir: safetensors weights, no remote code."""
    return AutoModelForSequenceClassification.from_pretrained(
        directory, use_safetensors=True, trust_remote_code=False
    )


def resolve(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local checkpoint dir, or a Hub id fetched through huggingface_hub's download and cache."""
    local = Path(name_or_path)
    if local.is_dir():
        return local
    if local.exists() or str(name_or_path).count("/") != 1:
        raise CheckpointError(f"{name_or_path}: neither a local directory nor a Hub id (org/name)")
    try:
        return Path(snapshot_download(str(name_or_path), revision=revision,
                                      allow_patterns=CHECKPOINT_PATTERNS))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        offline = " (HF_HUB_OFFLINE is set: only the local cache was searched)" \
            if constants.HF_HUB_OFFLINE else ""
        raise CheckpointError(f"{name_or_path}: could not be fetched from the Hub{offline}: "
                              f"{type(err).__name__}") from err
