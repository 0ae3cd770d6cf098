"""Checkpoint files: vitopic's metadata beside an ordinary transformers checkpoint, checked before use
(fetching one from the Hub is `vitopic.hub.resolve`).

`vitopic.json` holds what plain transformers does not know (text preparation, thresholds). It is
written last, atomically, so its presence marks a finished checkpoint. `open_checkpoint` checks a
checkpoint's files cheaply (JSON, the tokenizer's files, the safetensors headers) before anything
is built from them: a tampered or broken checkpoint is a one-line CheckpointError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import (
    AutoModelForSequenceClassification,
    PhobertTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from vitopic import __version__
from vitopic.config import MIN_MAX_LENGTH, PHOBERT_MAX_LENGTH
from vitopic.errors import VitopicError
from vitopic.files import write_text
from vitopic.heads import Head, head_for
from vitopic.labels import label_names_problem
from vitopic.options import SEGMENTERS, Mode

METADATA_FILE = "vitopic.json"
METRICS_FILE = "metrics.json"
QUALITY_WARNINGS = "quality_warnings"  # metrics.json key: why training flagged the model


def not_worth_using(warnings: list[str]) -> str:
    """How every output says that training flagged a model (`QUALITY_WARNINGS`), and why."""
    return f"this model is not worth using: {'; '.join(map(str, warnings))}"


CONFIG_FILE = "config.json"
TOKENIZER_FILES = ("vocab.txt", "bpe.codes")
TOKENIZER_CONFIG = "tokenizer_config.json"
LEGACY_TOKENIZER_FILES = ("special_tokens_map.json", "added_tokens.json")  # read if present
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
SHARDS = "model*.safetensors"  # the only files a sharded checkpoint's index may name
ONNX_FILE = "model.onnx"  # written by `vitopic export`
INT8_FILE = "model.int8.onnx"
CT2_DIR = "ct2-int8"  # written by `vitopic export --ct2`: a CTranslate2 int8 encoder
EXPORT_SOURCE = "vitopic-source.json"  # in CT2_DIR: the fingerprint of what it was converted from
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# What a checkpoint consists of; everything else in a run directory (trainer checkpoints,
# reports, plots) stays out of downloads and uploads.
CHECKPOINT_PATTERNS = [
    CONFIG_FILE,
    *SAFE_WEIGHTS,
    SHARDS,
    *TOKENIZER_FILES,
    TOKENIZER_CONFIG,
    *LEGACY_TOKENIZER_FILES,
    METADATA_FILE,
    "README.md",
    ONNX_FILE,
    INT8_FILE,
]
MODEL_TYPE = "roberta"  # PhoBERT is a RoBERTa


class CheckpointError(VitopicError, ValueError):
    """A checkpoint that is unfinished, unsafe or inconsistent."""


@dataclass
class Metadata:
    labels: list[str]
    mode: Mode
    segmenter: str
    max_length: int
    thresholds: list[float]
    base_model: str | None = None
    base_revision: str | None = None
    vitopic_version: str = field(default=__version__)

    @property
    def head(self) -> Head:
        """What `mode` means for classes, scores and decisions."""
        return head_for(self.mode)

    def save(self, directory: str | Path) -> Path:
        """Write whole or not at all (`vitopic.files`): a reader never sees half a file."""
        return write_text(
            Path(directory) / METADATA_FILE, json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"
        )

    @classmethod
    def load(cls, directory: str | Path) -> Metadata:
        """Read, check and cross-check against `config.json`; raise CheckpointError on any problem."""
        directory = Path(directory)
        path = directory / METADATA_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{directory}: no {METADATA_FILE}; this is not a finished vitopic checkpoint "
                "(training may have been interrupted)"
            )
        try:
            meta = cls(**_read_json(path))
        except TypeError as err:
            raise CheckpointError(f"{path}: unreadable vitopic metadata ({err})") from err
        meta._check(path)
        config = _read_json(directory / CONFIG_FILE)
        expected = meta.head.class_names(meta.labels)
        id2label = config.get("id2label", {})
        actual = (
            [id2label.get(str(i)) for i in range(len(id2label))] if isinstance(id2label, dict) else id2label
        )
        if actual != expected:
            raise CheckpointError(f"{path}: labels {expected} disagree with config.json id2label {actual}")
        if config.get("problem_type") != meta.head.problem_type:
            raise CheckpointError(
                f"{path}: mode {meta.mode!r} disagrees with config.json "
                f"problem_type {config.get('problem_type')!r}"
            )
        return meta

    def _check(self, path: Path) -> None:
        """The field values: types and ranges, as a config's are checked."""

        def require(ok: bool, message: str) -> None:
            if not ok:
                raise CheckpointError(f"{path}: {message}")

        labels = self.labels
        problem = label_names_problem(labels)
        require(problem is None, f"labels {problem}")
        try:
            head = self.head
        except ValueError as err:  # not a mode
            raise CheckpointError(f"{path}: {err}") from None
        reserved = head.reserved(labels)
        require(
            reserved is None, f"label {reserved!r} is reserved for the implicit class of {head.mode} mode"
        )
        require(
            self.segmenter in SEGMENTERS,
            f"segmenter must be one of {list(SEGMENTERS)}, got {self.segmenter!r}",
        )
        n = self.max_length
        require(
            isinstance(n, int) and not isinstance(n, bool) and MIN_MAX_LENGTH <= n <= PHOBERT_MAX_LENGTH,
            f"max_length must be an integer in {MIN_MAX_LENGTH}..{PHOBERT_MAX_LENGTH}, got {n!r} "
            f"(PhoBERT reads at most {PHOBERT_MAX_LENGTH} tokens; below {MIN_MAX_LENGTH}, <s> and "
            "</s> leave a piece almost no room for text)",
        )
        require(isinstance(self.thresholds, list), f"thresholds must be a list, got {self.thresholds!r}")
        for i, t in enumerate(self.thresholds):
            require(
                isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and 0 <= t <= 1,
                f"thresholds[{i}] must be a number in [0, 1], got {t!r}",
            )
        require(
            not head.uses_thresholds or len(self.thresholds) == len(labels),
            f"{len(self.thresholds)} thresholds for {len(labels)} labels",
        )


def open_checkpoint(directory: str | Path) -> Metadata:
    """Check a checkpoint dir is safe, finished and consistent; return its metadata.

    Refuses links out of the directory, pickle-only weights (they can run arbitrary code),
    unfinished runs (no vitopic.json), metadata that disagrees with config.json, a config that is
    not PhoBERT's, tokenizer files that do not fit the embeddings, and weights that miss a tensor
    the architecture needs or hold one of another shape (reading safetensors headers only).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such directory")
    _check_inside(directory)
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
    skeleton = _check_config(directory)
    _check_tokenizer_files(directory, skeleton.config)
    _check_weights(directory, skeleton)
    return metadata


def load_model(directory: str | Path) -> PreTrainedModel:
    """The classification model of a checkpoint dir: safetensors weights, no remote code.

    Refuses NaN or infinite weights, which would turn every score into NaN.
    """
    model = AutoModelForSequenceClassification.from_pretrained(
        directory, use_safetensors=True, trust_remote_code=False
    )
    for name, param in model.named_parameters():
        _check_finite(Path(directory), name, param)
    return model


def load_tensors(directory: str | Path, prefix: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors whose names start with `prefix` (e.g. "classifier."), keyed by the
    rest of the name; read from the safetensors weights only, refused if not finite."""
    directory = Path(directory)
    tensors = {}
    for path in _weight_files(directory)[1]:
        with safe_open(path, "pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if name.startswith(prefix):
                    tensors[name.removeprefix(prefix)] = _check_finite(directory, name, f.get_tensor(name))
    return tensors


def _check_finite(directory: Path, name: str, tensor: torch.Tensor) -> torch.Tensor:
    """`tensor`, or a CheckpointError if it holds NaN or infinite values (every score would be NaN)."""
    if not torch.isfinite(tensor).all():
        raise CheckpointError(f"{_weight_files(directory)[0]}: tensor {name} holds NaN or infinite values")
    return tensor


def _read_json(path: Path, required: bool = True) -> dict:
    """A JSON object file ({} for an absent optional one); CheckpointError if it is anything else."""
    if not path.is_file():
        if required:
            raise CheckpointError(f"{path}: not found")
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: must be a JSON object, got {type(data).__name__}")
    return data


def _check_inside(directory: Path) -> None:
    """Refuse checkpoint files that are links leading out of the directory."""
    for path in directory.iterdir():
        if any(fnmatch(path.name, pat) for pat in CHECKPOINT_PATTERNS):
            check_inside(path, directory)


def check_inside(path: Path, directory: Path) -> None:
    """CheckpointError if `path` is a link leading out of the checkpoint `directory`.

    huggingface_hub's cache keeps a snapshot's files as links into its repo folder
    (`models--org--name/snapshots/<commit>/config.json -> ../../blobs/<hash>`): those stay inside.
    """
    if not path.is_symlink():
        return
    root = directory.resolve()
    if root.parent.name == "snapshots" and root.parent.parent.name.startswith("models--"):
        root = root.parent.parent
    try:
        target = path.resolve()
    except (OSError, RuntimeError) as err:  # a loop of links
        raise CheckpointError(f"{path}: a broken link ({err})") from err
    if not target.is_relative_to(root):
        raise CheckpointError(f"{path}: a link to {target}, outside the checkpoint; refused")


def weights_fingerprint(directory: Path) -> str:
    """SHA-256 of what defines the encoder: config.json and the safetensors weights, in order.
    An export records it, so that one written for other weights is refused."""
    digest = hashlib.sha256()
    for path in [directory / CONFIG_FILE, *_weight_files(directory)[1]]:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _check_config(directory: Path) -> PreTrainedModel:
    """config.json describes a RoBERTa classifier transformers can build; return it without weights
    (on the meta device: shapes only, no memory, no initialisation)."""
    path = directory / CONFIG_FILE
    data = _read_json(path)
    if data.get("model_type") != MODEL_TYPE:
        raise CheckpointError(
            f"{path}: model_type {data.get('model_type')!r} is not {MODEL_TYPE!r}; "
            "vitopic models are PhoBERT (RoBERTa) classifiers"
        )
    if "transformers_weights" in data:  # would make transformers load another weights file
        raise CheckpointError(
            f"{path}: transformers_weights {data['transformers_weights']!r} "
            f"refused; vitopic loads {' or '.join(SAFE_WEIGHTS)} only"
        )
    try:
        with torch.device("meta"):
            model = RobertaForSequenceClassification(RobertaConfig.from_dict(data))
    except Exception as err:  # config.json is data: transformers fails on bad values in many ways
        reason = str(err).partition("\n")[0]
        raise CheckpointError(
            f"{path}: not a buildable RoBERTa config ({type(err).__name__}: {reason})"
        ) from err
    if model.config.num_labels != len(data.get("id2label") or {}):
        raise CheckpointError(
            f"{path}: num_labels {model.config.num_labels} disagrees with the "
            f"{len(data.get('id2label') or {})} classes of id2label"
        )
    return model


def _check_tokenizer_files(directory: Path, config: PretrainedConfig) -> None:
    """PhobertTokenizer is the class named, its files are there, and it has the embeddings' size."""
    tokenizer_config = _read_json(directory / TOKENIZER_CONFIG, required=False)
    for name in LEGACY_TOKENIZER_FILES:
        _read_json(directory / name, required=False)
    # AutoTokenizer's order: tokenizer_config.json, then config.json.
    named, source = tokenizer_config.get("tokenizer_class"), TOKENIZER_CONFIG
    if named is None:
        named, source = getattr(config, "tokenizer_class", None), CONFIG_FILE
    if named != PhobertTokenizer.__name__:
        raise CheckpointError(
            f"{directory / source}: tokenizer_class {named!r}; vitopic checkpoints "
            f"use {PhobertTokenizer.__name__} ({' + '.join(TOKENIZER_FILES)})"
        )
    vocab, merges = (directory / name for name in TOKENIZER_FILES)
    if not _read_tokenizer_file(merges).strip():
        raise CheckpointError(f"{merges}: empty; PhoBERT's tokenizer needs its BPE merges")
    tokens = _vocab(vocab)
    if len(tokens) != config.vocab_size:
        raise CheckpointError(
            f"{vocab}: {len(tokens)} tokens (with <s>, <pad>, </s>, <unk> and <mask>), but "
            f"config.json vocab_size (the embeddings' rows) is {config.vocab_size}"
        )
    _check_added_tokens(directory, tokenizer_config, tokens, config.vocab_size)


def _check_added_tokens(directory: Path, tokenizer_config: dict, vocab: set[str], rows: int) -> None:
    """Every id the tokenizer files give a token is a row of the embeddings, and every special
    token they name has one (transformers would append a missing one past the last row): a
    model that loads never fails later on an index out of range."""
    decoder = tokenizer_config.get("added_tokens_decoder") or {}
    if not isinstance(decoder, dict):
        raise CheckpointError(f"{directory / TOKENIZER_CONFIG}: added_tokens_decoder must be an object")
    legacy = _read_json(directory / "added_tokens.json", required=False)
    given = [
        *(
            (TOKENIZER_CONFIG, entry.get("content") if isinstance(entry, dict) else entry, key)
            for key, entry in decoder.items()
        ),
        *(("added_tokens.json", token, token_id) for token, token_id in legacy.items()),
    ]
    for name, token, token_id in given:
        number = int(token_id) if isinstance(token_id, str) and token_id.isdigit() else token_id
        if not (isinstance(number, int) and not isinstance(number, bool) and 0 <= number < rows):
            raise CheckpointError(
                f"{directory / name}: token {token!r} has id {token_id!r}, not a row of the "
                f"embeddings (config.json vocab_size {rows}: ids 0..{rows - 1})"
            )
    added = {token for _, token, _ in given}
    for name in (TOKENIZER_CONFIG, "special_tokens_map.json"):
        data = tokenizer_config if name == TOKENIZER_CONFIG else _read_json(directory / name, required=False)
        for token in _special_tokens(data):
            if token not in vocab and token not in added:
                raise CheckpointError(
                    f"{directory / name}: special token {token!r} is neither in vocab.txt nor an "
                    f"added token; transformers would give it id {rows}, past the embeddings' {rows} rows"
                )


def _special_tokens(data: dict) -> list[str]:
    """The special tokens a tokenizer file names (`*_token` keys, `additional_special_tokens`)."""
    named = [v for k, v in data.items() if k.endswith("_token")]
    extra = data.get("additional_special_tokens") or []
    found = []
    for value in [*named, *(extra if isinstance(extra, list) else [extra])]:
        content = value.get("content") if isinstance(value, dict) else value
        if isinstance(content, str):
            found.append(content)
    return found


def _read_tokenizer_file(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except FileNotFoundError as err:
        raise CheckpointError(
            f"{path}: not found; PhoBERT's tokenizer needs {' and '.join(TOKENIZER_FILES)}"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err})") from err


def _vocab(path: Path) -> set[str]:
    """PhobertTokenizer's tokens: <s> <pad> </s> <unk>, one per `<token> <count>` line, <mask>."""
    lines = _read_tokenizer_file(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines:
        raise CheckpointError(f"{path}: empty")
    tokens: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        token, sep, _ = line.strip().rpartition(" ")
        if not sep:
            raise CheckpointError(f"{path}:{number}: expected '<token> <count>', got {line!r}")
        if token in tokens:
            raise CheckpointError(f"{path}:{number}: token {token!r} already on line {tokens[token]}")
        tokens[token] = number
    return {"<s>", "<pad>", "</s>", "<unk>", *tokens, "<mask>"}


def _weight_files(directory: Path) -> tuple[Path, list[Path]]:
    """The file naming the weights, and the safetensors files transformers loads: model.safetensors,
    else the shards of its index, which must be `model*.safetensors` files in the directory itself."""
    single, index = (directory / name for name in SAFE_WEIGHTS)
    if single.is_file():
        return single, [single]
    data = _read_json(index)
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not isinstance(data.get("metadata"), dict):
        raise CheckpointError(f"{index}: needs a non-empty weight_map and a metadata object")
    shards: list[str] = []
    for name in weight_map.values():
        if not (isinstance(name, str) and Path(name).name == name and fnmatch(name, SHARDS)):
            raise CheckpointError(
                f"{index}: weight_map names {name!r}; only {SHARDS} files in the "
                "checkpoint directory are loaded"
            )
        if not (directory / name).is_file():
            raise CheckpointError(f"{index}: shard {name} not found")
        shards.append(name)
    return index, [directory / name for name in sorted(set(shards))]


def _check_weights(directory: Path, skeleton: PreTrainedModel) -> None:
    """Every tensor the architecture needs is in the weights with its shape; headers only are read.

    transformers would fill a missing one with random values, without an error.
    """
    source, files = _weight_files(directory)
    found: dict[str, tuple[Path, list[int]]] = {}
    for path in files:
        try:
            with safe_open(path, "pt") as f:
                found.update({name: (path, f.get_slice(name).get_shape()) for name in f.keys()})  # noqa: SIM118
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path}: not a valid safetensors file ({err})") from err
    tied = skeleton.all_tied_weights_keys.keys()  # loaded from the tensor they share
    for name, tensor in skeleton.state_dict().items():
        if name in tied:
            continue
        if name not in found:
            raise CheckpointError(
                f"{source}: tensor {name} missing (transformers would fill it with random values)"
            )
        path, shape = found[name]
        if list(shape) != list(tensor.shape):
            raise CheckpointError(
                f"{path}: tensor {name} has shape {list(shape)}, config.json needs {list(tensor.shape)}"
            )
