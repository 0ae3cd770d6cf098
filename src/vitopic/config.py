"""The one config schema: typed sections with defaults, loaded from YAML plus `key.sub=value` overrides."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vitopic.errors import VitopicError
from vitopic.heads import Head, head_for
from vitopic.options import Mode, SegmenterName

DEFAULT_LABELS = ("ukraine_aid", "gaza", "nato")
PHOBERT_MAX_LENGTH = 256
MIN_MAX_LENGTH = 8  # <s> and </s> take two positions; a piece must leave room for some text


class ConfigError(VitopicError, ValueError):
    """A config problem, always naming the file and the key."""

    def __init__(self, source: str, key: str, message: str):
        super().__init__(f"{source}: {key}: {message}")
        self.source, self.key = source, key


@dataclass
class ModelConfig:
    """Which network to fine-tune: a pretrained checkpoint, or a small one built from scratch."""

    name_or_path: str | None = None  # Hub id or local dir; None builds a PhoBERT-shaped model
    revision: str | None = None
    license: str | None = None  # defaults to the base model's license (see modelcard)
    mode: Mode = "multi_label"
    # Shape of a from-scratch model (ignored when name_or_path is set).
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 128
    dropout: float = 0.1
    bpe_merges: int = 4000  # BPE merges learned for a from-scratch tokenizer

    @property
    def head(self) -> Head:
        """What `mode` means for classes, targets, scores and decisions."""
        return head_for(self.mode)


@dataclass
class DataConfig:
    """Where the JSONL splits live and which labels they use."""

    dir: str = "training/data"
    train_file: str = "train.jsonl"
    dev_file: str = "dev.jsonl"
    test_file: str | None = "test.jsonl"
    seed_file: str | None = "seed.jsonl"
    labels: list[str] = field(default_factory=lambda: list(DEFAULT_LABELS))

    def path(self, name: str) -> Path:
        return Path(self.dir) / name


@dataclass
class TextConfig:
    """How raw Vietnamese becomes PhoBERT input."""

    segmenter: SegmenterName = "pyvi"
    max_length: int = PHOBERT_MAX_LENGTH


Scheduler = Literal[
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
]


@dataclass
class TrainingConfig:
    """Optimisation settings, passed on to `transformers.TrainingArguments`."""

    learning_rate: float = 2e-5
    batch_size: int = 16
    eval_batch_size: int = 64
    epochs: float = 5.0
    max_steps: int = -1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    seed: int = 42
    pos_weight: bool = False
    early_stopping_patience: int | None = 3  # evaluations without a better dev macro-F1
    eval_steps: int | None = None  # evaluate and checkpoint every N steps; None: every epoch
    bf16: bool = False  # bf16 autocast (CPUs with AVX-512 bf16, Ampere+ GPUs)
    fp16: bool = False  # fp16 mixed precision: CUDA only
    gradient_accumulation_steps: int = 1  # effective batch = batch_size x this x processes
    lr_scheduler_type: Scheduler = "linear"
    max_grad_norm: float = 1.0  # gradient clipping
    group_by_length: bool = False  # batches of similar lengths (less padding)
    report_to: Literal["none", "tensorboard"] = "none"  # tensorboard: logs under checkpoints/runs
    dataloader_num_workers: int = 0
    torch_compile: bool = False
    logging_steps: int = 10
    save_total_limit: int = 2


@dataclass
class OutputConfig:
    """Where a run writes its checkpoint, reports and plots."""

    dir: str = "runs/tiny"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(value: Any, hint: Any, source: str, key: str) -> Any:
    """Return `value` coerced to `hint` (ints widen to floats), or raise a ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, source, key)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(source, key, f"must be one of {list(choices)}, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(source, key, f"must be a list, got {type(value).__name__}")
        return [_check_type(v, item, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(source, key, f"must be a finite number, got {value!r}")
        return float(value)
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(source, key, f"must be {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, data: Any, source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(source, prefix or "<root>", "must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(source, dotted, f"unknown key (known: {sorted(names)})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, source, dotted)
        else:
            kwargs[key] = _check_type(value, hint, source, dotted)
    return cls(**kwargs)


def _validate(cfg: Config, source: str, check_files: bool) -> None:
    """Value checks that types alone cannot express."""

    def require(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise ConfigError(source, key, message)

    labels = cfg.data.labels
    require(len(labels) > 0, "data.labels", "must name at least one label")
    require(len(set(labels)) == len(labels), "data.labels", "labels must be unique")
    require(
        all(lab.strip() and lab == lab.strip() for lab in labels),
        "data.labels",
        "labels must be non-empty names without surrounding spaces",
    )
    head = cfg.model.head
    reserved = head.reserved(labels)
    require(
        reserved is None,
        "data.labels",
        f"{reserved!r} is reserved for the implicit class of {head.mode} mode",
    )
    t = cfg.training
    require(t.learning_rate > 0, "training.learning_rate", f"must be > 0, got {t.learning_rate}")
    require(t.batch_size > 0, "training.batch_size", f"must be > 0, got {t.batch_size}")
    require(t.eval_batch_size > 0, "training.eval_batch_size", "must be > 0")
    require(t.epochs > 0, "training.epochs", f"must be > 0, got {t.epochs}")
    require(t.max_steps == -1 or t.max_steps > 0, "training.max_steps", "must be -1 or > 0")
    require(0 <= t.warmup_ratio < 1, "training.warmup_ratio", "must be in [0, 1)")
    require(t.weight_decay >= 0, "training.weight_decay", "must be >= 0")
    require(t.eval_steps is None or t.eval_steps > 0, "training.eval_steps", "must be > 0 or null")
    require(t.logging_steps > 0, "training.logging_steps", "must be > 0")
    require(t.save_total_limit > 0, "training.save_total_limit", "must be > 0")
    require(t.gradient_accumulation_steps > 0, "training.gradient_accumulation_steps", "must be > 0")
    require(t.max_grad_norm > 0, "training.max_grad_norm", "must be > 0")
    require(t.dataloader_num_workers >= 0, "training.dataloader_num_workers", "must be >= 0")
    require(not (t.bf16 and t.fp16), "training.fp16", "choose one of training.bf16 and fp16")
    require(
        t.report_to != "tensorboard" or importlib.util.find_spec("tensorboard") is not None,
        "training.report_to",
        "tensorboard is not installed: pip install tensorboard",
    )
    require(
        t.early_stopping_patience is None or t.early_stopping_patience > 0,
        "training.early_stopping_patience",
        "must be > 0 or null",
    )
    require(
        MIN_MAX_LENGTH <= cfg.text.max_length <= PHOBERT_MAX_LENGTH,
        "text.max_length",
        f"must be in {MIN_MAX_LENGTH}..{PHOBERT_MAX_LENGTH} (PhoBERT has 258 positions; "
        "<s> and </s> take two)",
    )
    m = cfg.model
    require(
        m.hidden_size % m.num_attention_heads == 0,
        "model.hidden_size",
        "must be divisible by model.num_attention_heads",
    )
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "bpe_merges"):
        require(getattr(m, key) > 0, f"model.{key}", "must be > 0")
    require(0 <= m.dropout < 1, "model.dropout", "must be in [0, 1)")
    require(bool(cfg.output.dir.strip()), "output.dir", "must not be empty")
    if check_files:
        for key in ("train_file", "dev_file", "test_file", "seed_file"):
            name = getattr(cfg.data, key)
            if name is not None and not cfg.data.path(name).exists():
                require(False, f"data.{key}", f"file not found: {cfg.data.path(name)}")


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML lets
    the last one win silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKeyError(str(key), key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 reads 2e-3 (no dot) as a string; read every exponent form as a float, as YAML 1.2 does.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _read_yaml(text: str, source: str, key: str) -> Any:
    """Parse with `_UniqueKeyLoader`; a ConfigError at `source`/`key` on any YAML problem."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKeyError as err:
        raise ConfigError(source, err.key, f"given twice (line {err.line})") from err
    except yaml.YAMLError as err:
        raise ConfigError(source, key, f"not valid YAML: {str(err).splitlines()[0]}") from err


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b=value` into (["a", "b"], parsed YAML value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("<command line>", text, "override must look like key.sub=value")
    value = _read_yaml(raw, "<command line>", key.strip()) if raw.strip() else None
    return key.strip().split("."), value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    check_files: bool = True,
) -> Config:
    """Load, override and validate a config; raise ConfigError naming file and key on any problem."""
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(source, "<file>", "config file not found")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ConfigError(
                source,
                "<file>",
                f"not UTF-8 text (byte 0x{err.object[err.start]:02x}"
                f" at offset {err.start}); re-save it as UTF-8",
            ) from err
        data = _read_yaml(text, source, "<yaml>") or {}
        if not isinstance(data, dict):
            raise ConfigError(source, "<root>", "must be a mapping of sections")
    for override in overrides:
        keys, value = parse_override(override)
        node = data
        for part in keys[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(source, ".".join(keys), "cannot override inside a non-mapping")
        node[keys[-1]] = value
    cfg = _build(Config, data, source, "")
    _validate(cfg, source, check_files)
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(
        yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
