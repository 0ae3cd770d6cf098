"""The one config schema: typed sections with defaults, loaded from YAML plus `key.sub=value` overrides."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import math
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from vitopic.errors import VitopicError, clip, shown
from vitopic.heads import Head, head_for
from vitopic.labels import DEFAULT_LABELS, label_names_problem
from vitopic.options import Mode, SegmenterName

PHOBERT_MAX_LENGTH = 256
MIN_MAX_LENGTH = 8  # <s> and </s> take two positions; a piece must leave room for some text


class ConfigError(VitopicError, ValueError):
    """Config problems, each naming the file and the key: one line per problem, `.key` the first's."""

    def __init__(self, source: str, key: str, message: str, *more: tuple[str, str]):
        self.problems = [(clip(str(key)), message), *((clip(str(k)), m) for k, m in more)]
        super().__init__("\n".join(f"{source}: {k}: {m}" for k, m in self.problems))
        self.source, self.key = source, key


Problems = list[tuple[str, str]]  # (key, message); a section's keys are relative to the section


def shape_problems(model: Any, positive: tuple[str, ...]) -> Problems:
    """The checks every encoder shape shares: `positive` keys > 0, heads dividing the width and
    dropout in [0, 1)."""
    found = [(key, "must be > 0") for key in positive if getattr(model, key) <= 0]
    if model.num_attention_heads > 0 and model.hidden_size % model.num_attention_heads:
        found.append(("hidden_size", "must be divisible by model.num_attention_heads"))
    if not 0 <= model.dropout < 1:
        found.append(("dropout", "must be in [0, 1)"))
    return found


@dataclass
class ModelConfig:
    """Which network to fine-tune: a pretrained checkpoint, or a small one built from scratch.

    Read by `modeling.build_model` (`base_model.fetch_base_model` for name_or_path and revision,
    `heads.head_for` for mode, the model card for license)."""

    name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub id (e.g. vinai/phobert-base) or local directory of the pretrained model to "
            "fine-tune; null builds a PhoBERT-shaped model from scratch, shaped by the keys below"
        },
    )
    revision: str | None = field(
        default=None,
        metadata={
            "help": "Hub branch, tag or commit of name_or_path (a Hub id only); null: its default branch"
        },
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "the model card's license id (e.g. apache-2.0); null: the base model's "
            "(MIT or AGPL-3.0 for PhoBERT), MIT for a model built from scratch"
        },
    )
    mode: Mode = field(
        default="multi_label",
        metadata={
            "help": "multi_label: each label on or off by its own tuned threshold (sigmoid); single_label: "
            "at most one label per sentence (softmax with an implicit 'none' class)"
        },
    )
    hidden_size: int = field(default=128, metadata={"help": "from scratch only: the encoder's width"})
    num_hidden_layers: int = field(default=2, metadata={"help": "from scratch only: transformer layers"})
    num_attention_heads: int = field(
        default=4, metadata={"help": "from scratch only: attention heads (must divide hidden_size)"}
    )
    intermediate_size: int = field(
        default=256, metadata={"help": "from scratch only: the feed-forward layers' width"}
    )
    dropout: float = field(
        default=0.1,
        metadata={
            "help": "dropout on hidden states and attention, for a pretrained model too (PhoBERT's own: 0.1)"
        },
    )

    freeze_embeddings: bool = field(
        default=False,
        metadata={
            "help": "pretrained base only: keep its word embeddings as they are (words the train "
            "split lacks keep what pretraining taught; a faster step)"
        },
    )

    SCRATCH_ONLY: ClassVar[tuple[str, ...]] = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
    )
    # The keys a config file or override set (`load_config` fills it in): a shape key that was
    # set is refused beside name_or_path even when it equals the default.
    given: ClassVar[frozenset[str]] = frozenset()

    @property
    def head(self) -> Head:
        """What `mode` means for classes, targets, scores and decisions."""
        return head_for(self.mode)

    def problems(self) -> Problems:
        found = shape_problems(self, self.SCRATCH_ONLY)
        if self.name_or_path is None:
            if self.revision is not None:
                found.append(("revision", "needs model.name_or_path (a model built from scratch has none)"))
            if self.freeze_embeddings:
                found.append(
                    ("freeze_embeddings", "needs model.name_or_path (pretrained embeddings to keep)")
                )
            return found
        defaults = ModelConfig()
        found += [
            (
                key,
                "shapes a model built from scratch; model.name_or_path is set, so the base "
                "model's own applies",
            )
            for key in self.SCRATCH_ONLY
            if key in self.given or getattr(self, key) != getattr(defaults, key)
        ]
        if not self.name_or_path.strip():
            found.append(("name_or_path", "must not be empty (null builds a model from scratch)"))
        elif self.revision is not None and Path(self.name_or_path).expanduser().is_dir():
            found.append(("revision", f"{self.name_or_path} is a local directory, which has no revisions"))
        return found


@dataclass
class DataConfig:
    """Where the labeled splits live and which labels they use.

    Read by `training.Splits.load`; labels also by `modeling.build_model` (the model's classes);
    name and label_descriptions by the model card (`modelcard.training_data`)."""

    dir: str = field(default="corpus", metadata={"help": "the directory holding the split files below"})
    train_file: str = field(
        default="train.jsonl",
        metadata={"help": "training split in data.dir: JSONL, CSV or a saved datasets dataset"},
    )
    dev_file: str | None = field(
        default="dev.jsonl",
        metadata={
            "help": "dev split: evaluations during training, checkpoint choice, threshold tuning; "
            "null: held out from the train file (data.dev_ratio)"
        },
    )
    test_file: str | None = field(
        default="test.jsonl",
        metadata={
            "help": "test split, used only for the reported metrics; null: held out from the train "
            "file (data.test_ratio; 0: no test split)"
        },
    )
    showcase_file: str | None = field(
        default="showcase.jsonl",
        metadata={
            "help": "a few sentences the trained model labels in report.md and metrics.json (kept out "
            "of every split); null: none"
        },
    )
    labels: list[str] = field(
        default_factory=lambda: list(DEFAULT_LABELS),
        metadata={
            "help": "the label names, in the model's output order; every train label must be one of them"
        },
    )
    name: str | None = field(
        default=None,
        metadata={
            "help": "the data set's name on the model card; null: the data directory's name "
            "(vitopic, for the shipped corpus)"
        },
    )
    label_descriptions: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "what each label means, for the model card's label table ({label: text}); the "
            "shipped labels trained on the shipped corpus have their own"
        },
    )

    dev_ratio: float = field(
        default=0.1,
        metadata={
            "help": "with dev_file null: the share of the train file held out as dev (stratified on "
            "label sets, seeded by training.seed; the ids are saved in the run's splits.json)"
        },
    )
    test_ratio: float = field(
        default=0.1,
        metadata={"help": "with test_file null: the share of the train file held out as test; 0: none"},
    )

    FILES: ClassVar[tuple[str, ...]] = ("train_file", "dev_file", "test_file", "showcase_file")

    def path(self, name: str) -> Path:
        return Path(self.dir) / name

    def problems(self) -> Problems:
        found = []
        if problem := label_names_problem(self.labels):
            found.append(("labels", problem))
        if self.name is not None and not self.name.strip():
            found.append(("name", "must not be empty (null: the data directory's name)"))
        for lab, text in self.label_descriptions.items():
            if lab not in self.labels:
                found.append(("label_descriptions", f"{shown(lab)} is not one of data.labels"))
            elif not text.strip():
                found.append(("label_descriptions", f"{shown(lab)}: the description is empty"))
        for key in self.FILES:
            name = getattr(self, key)
            if name is not None and not name.strip():
                found.append((key, "must name a file (or be null where that is allowed)"))
        if not 0 < self.dev_ratio < 1:
            found.append(("dev_ratio", f"must be in (0, 1), got {shown(self.dev_ratio)}"))
        if not 0 <= self.test_ratio < 1:
            found.append(("test_ratio", f"must be in [0, 1), got {shown(self.test_ratio)}"))
        elif self.held_out and self.held_out_share >= 1:
            found.append(("test_ratio", "data.dev_ratio + data.test_ratio must leave some train examples"))
        return found

    @property
    def held_out(self) -> dict[str, float]:
        """The splits taken from the train file (their file is null), with their shares."""
        shares = {"dev": self.dev_ratio, "test": self.test_ratio}
        return {
            name: shares[name] for name in shares if getattr(self, f"{name}_file") is None and shares[name]
        }

    @property
    def held_out_share(self) -> float:
        return sum(self.held_out.values())

    def missing_files(self) -> Problems:
        """The split files named here that do not exist (for dev and test: how to do without)."""
        hints = {
            "dev_file": "; set data.dev_file=null to hold dev out of the train file",
            "test_file": "; set data.test_file=null to hold test out of the train file",
        }
        return [
            (key, f"file not found: {self.path(name)}{hints.get(key, '')}")
            for key in self.FILES
            if (name := getattr(self, key)) and name.strip() and not self.path(name).exists()
        ]


@dataclass
class TextConfig:
    """How raw Vietnamese becomes PhoBERT input.

    Read by `training.train` (`text.prepare`, the tokenizer) and saved in the checkpoint's
    `vitopic.json`, which prediction follows."""

    segmenter: SegmenterName = field(
        default="rdrsegmenter",
        metadata={
            "help": "word segmenter (README, Text preparation); rdrsegmenter needs Java; none: the "
            "input is already segmented"
        },
    )
    max_length: int = field(
        default=PHOBERT_MAX_LENGTH,
        metadata={
            "help": "tokens per model input, <s> and </s> included; longer inputs are split into "
            "sentences and windows"
        },
    )

    def problems(self) -> Problems:
        if MIN_MAX_LENGTH <= self.max_length <= PHOBERT_MAX_LENGTH:
            return []
        return [
            (
                "max_length",
                f"must be in {MIN_MAX_LENGTH}..{PHOBERT_MAX_LENGTH} (PhoBERT has 258 positions; "
                "<s> and </s> take two)",
            )
        ]


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
    """Optimisation settings, passed on to `transformers.TrainingArguments` (same names unless said).

    Read by `training.training_arguments`; pos_weight and early_stopping_patience by
    `training.train`, seed also by the model's initialisation and the TF-IDF baseline."""

    learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "AdamW's peak learning rate (the default suits a model from scratch; PhoBERT: 2e-5)"
        },
    )
    batch_size: int = field(
        default=16, metadata={"help": "training sentences per device per step (per_device_train_batch_size)"}
    )
    eval_batch_size: int = field(
        default=64, metadata={"help": "sentences per device per evaluation step (per_device_eval_batch_size)"}
    )
    epochs: float = field(default=12.0, metadata={"help": "passes over the train split (num_train_epochs)"})
    max_steps: int = field(
        default=-1, metadata={"help": "optimiser steps in all, overriding epochs; -1: epochs decide"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW's decoupled weight decay"})
    warmup_ratio: float = field(
        default=0.06, metadata={"help": "share of the steps over which the learning rate warms up"}
    )
    seed: int = field(
        default=42,
        metadata={
            "help": "random seed: data order, initial weights, the TF-IDF baseline (seed and data_seed)"
        },
    )
    pos_weight: bool = field(
        default=False,
        metadata={
            "help": "multi_label only: weight each label's positives by negatives/positives in the loss"
        },
    )
    early_stopping_patience: int | None = field(
        default=3,
        metadata={
            "help": "stop after this many evaluations without a better dev macro-F1; null: never stop early"
        },
    )
    eval_steps: int | None = field(
        default=None, metadata={"help": "evaluate and checkpoint every N steps; null: every epoch"}
    )
    bf16: bool = field(
        default=False, metadata={"help": "bf16 autocast (CPUs with AVX-512 bf16, Ampere+ GPUs)"}
    )
    fp16: bool = field(default=False, metadata={"help": "fp16 mixed precision: CUDA only"})
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={
            "help": "steps whose gradients add up before an update: effective batch = "
            "batch_size x this x processes"
        },
    )
    lr_scheduler_type: Scheduler = field(
        default="linear", metadata={"help": "the learning-rate schedule after warmup"}
    )
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "gradient clipping: the largest gradient norm"}
    )
    group_by_length: bool = field(
        default=False,
        metadata={
            "help": "batches of similar lengths, less padding (train_sampling_strategy=group_by_length)"
        },
    )
    report_to: Literal["none", "tensorboard"] = field(
        default="none",
        metadata={"help": "tensorboard: logs under output.dir/checkpoints/runs (pip install tensorboard)"},
    )
    dataloader_num_workers: int = field(
        default=0, metadata={"help": "data-loading worker processes; 0: the main process"}
    )
    torch_compile: bool = field(default=False, metadata={"help": "compile the model with torch.compile"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every N steps"})
    save_total_limit: int = field(
        default=2, metadata={"help": "trainer checkpoints kept in output.dir/checkpoints (the best stays)"}
    )

    def problems(self) -> Problems:
        positive = (
            "learning_rate",
            "batch_size",
            "eval_batch_size",
            "epochs",
            "logging_steps",
            "save_total_limit",
            "gradient_accumulation_steps",
            "max_grad_norm",
        )
        found = [
            (key, f"must be > 0, got {shown(getattr(self, key))}")
            for key in positive
            if getattr(self, key) <= 0
        ]
        checks = (
            (self.max_steps == -1 or self.max_steps > 0, "max_steps", "must be -1 or > 0"),
            (0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", "must be >= 0"),
            (self.eval_steps is None or self.eval_steps > 0, "eval_steps", "must be > 0 or null"),
            (
                self.early_stopping_patience is None or self.early_stopping_patience > 0,
                "early_stopping_patience",
                "must be > 0 or null",
            ),
            (self.dataloader_num_workers >= 0, "dataloader_num_workers", "must be >= 0"),
            (not (self.bf16 and self.fp16), "fp16", "choose one of training.bf16 and fp16"),
            (
                self.report_to != "tensorboard" or importlib.util.find_spec("tensorboard") is not None,
                "report_to",
                "tensorboard is not installed: pip install tensorboard",
            ),
        )
        return found + [(key, message) for ok, key, message in checks if not ok]


@dataclass
class OutputConfig:
    """Where a run writes its checkpoint, reports and plots.

    Read by `training.train` (see `run_dir` for what the directory holds)."""

    dir: str = field(
        default="runs/tiny",
        metadata={
            "help": "the run directory: checkpoint, model card, reports, plots, checkpoints/ while training"
        },
    )

    def problems(self) -> Problems:
        return [] if self.dir.strip() else [("dir", "must not be empty")]


def _section_dict(section: Any) -> dict[str, Any]:
    """A section's keys; a pretrained base's config leaves out the from-scratch shape keys, which
    it refuses (the base model's own shape applies)."""
    data = dataclasses.asdict(section)
    if isinstance(section, ModelConfig) and section.name_or_path is not None:
        for key in ModelConfig.SCRATCH_ONLY:
            del data[key]
    return data


class Sections:
    """A config made of sections, each checking its own keys (`problems()`)."""

    def to_dict(self) -> dict[str, Any]:
        """Every section's keys, as a config file gives them (so a saved config loads again)."""
        return {f.name: _section_dict(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def section_problems(self) -> Problems:
        """Every section's own value problems, with dotted keys."""
        return [
            (f"{f.name}.{key}", message)
            for f in dataclasses.fields(self)
            for key, message in getattr(self, f.name).problems()
        ]


@dataclass
class Config(Sections):
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def problems(self, check_files: bool = True) -> Problems:
        """Every value problem, dotted keys: each section's own, then those across sections."""
        found = self.section_problems()
        head = self.model.head
        reserved = head.reserved(self.data.labels)
        if reserved is not None:
            found.append(
                ("data.labels", f"{reserved!r} is reserved for the implicit class of {head.mode} mode")
            )
        if self.training.pos_weight and not head.takes_pos_weight:
            found.append(("training.pos_weight", f"applies to multi_label mode, not {head.mode}"))
        if check_files:
            found += [(f"data.{key}", message) for key, message in self.data.missing_files()]
        return found


@dataclass
class PretrainModelConfig:
    """The encoder's shape (PhoBERT's vocabulary and 258 positions are fixed). Read by
    `pretraining.build_mlm`."""

    hidden_size: int = field(default=256, metadata={"help": "the encoder's width"})
    num_hidden_layers: int = field(default=4, metadata={"help": "transformer layers"})
    num_attention_heads: int = field(
        default=4, metadata={"help": "attention heads (must divide hidden_size)"}
    )
    intermediate_size: int = field(default=1024, metadata={"help": "the feed-forward layers' width"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on hidden states and attention"})
    embedding_init: Literal["random", "word2vec"] = field(
        default="random",
        metadata={
            "help": "word2vec: start the embeddings from skip-gram vectors of PhoBERT's pieces "
            "learned on the sources (minutes; needs gensim)"
        },
    )
    word2vec_epochs: int = field(default=3, metadata={"help": "passes of word2vec over the text"})

    def problems(self) -> Problems:
        return shape_problems(self, (*ModelConfig.SCRATCH_ONLY, "word2vec_epochs"))


@dataclass
class PretrainDataConfig:
    """The unlabeled text and how it is prepared. Read by `pretrain_data.prepare_source`."""

    sources: list[str] = field(
        default_factory=list,
        metadata={
            "help": "text files: JSONL with a 'text' field or plain text (one document a line), "
            "optionally .gz or .xz; streamed"
        },
    )
    cache_dir: str = field(
        default=".cache/pretrain",
        metadata={"help": "where each source's prepared token ids are cached (prepared once)"},
    )
    segmenter: SegmenterName = field(
        default="rdrsegmenter",
        metadata={"help": "word segmenter, as in fine-tuning; the fine-tune must use the same"},
    )
    holdout_every: int = field(
        default=100, metadata={"help": "every Nth document of a source is held out for evaluation"}
    )
    description: str = field(
        default="", metadata={"help": "the sources' origin, period and terms, for the model card"}
    )

    def problems(self) -> Problems:
        found = [] if self.sources else [("sources", "must name at least one text file")]
        if self.holdout_every < 2:
            found.append(("holdout_every", "must be >= 2"))
        return found


@dataclass
class PretrainTrainingConfig:
    """The masked-LM run. Read by `pretraining.pretrain`."""

    seq_length: int = field(
        default=128, metadata={"help": "tokens per packed sequence, <s> and </s> included"}
    )
    batch_size: int = field(default=32, metadata={"help": "sequences per step"})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW's peak learning rate"})
    warmup_steps: int = field(default=500, metadata={"help": "steps of linear warm-up"})
    max_steps: int = field(
        default=10000, metadata={"help": "optimiser steps in all (then linear decay to a tenth)"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW's decoupled weight decay"})
    mask_prob: float = field(
        default=0.15, metadata={"help": "share of tokens chosen as targets (RoBERTa's 80/10/10 rule)"}
    )
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast (CPUs with AVX-512 bf16, GPUs)"})
    seed: int = field(default=42, metadata={"help": "seeds the weights, batches, masks and dropout"})
    device: Literal["auto", "cpu", "cuda"] = field(
        default="auto", metadata={"help": "auto: cuda when there is one"}
    )
    threads: int = field(default=0, metadata={"help": "torch CPU threads; 0: torch's default"})
    checkpoint_minutes: float = field(
        default=5.0, metadata={"help": "minutes between saved states (what --resume continues)"}
    )
    eval_steps: int = field(
        default=1000, metadata={"help": "steps between held-out evaluations; 0: at the end only"}
    )
    eval_sequences: int = field(
        default=256, metadata={"help": "held-out sequences per source in each evaluation"}
    )
    log_seconds: float = field(default=30.0, metadata={"help": "seconds between progress lines"})

    def problems(self) -> Problems:
        found = []
        if not 8 <= self.seq_length <= PHOBERT_MAX_LENGTH:
            found.append(("seq_length", f"must be in 8..{PHOBERT_MAX_LENGTH}"))
        for key in ("batch_size", "max_steps", "eval_sequences"):
            if getattr(self, key) <= 0:
                found.append((key, "must be > 0"))
        for key in ("warmup_steps", "eval_steps", "threads"):
            if getattr(self, key) < 0:
                found.append((key, "must be >= 0"))
        for key in ("learning_rate", "checkpoint_minutes", "log_seconds"):
            if getattr(self, key) <= 0:
                found.append((key, "must be > 0"))
        if not 0 < self.mask_prob < 1:
            found.append(("mask_prob", "must be in (0, 1)"))
        return found


@dataclass
class PretrainOutputConfig(OutputConfig):
    """Where the base model is written. Read by `pretraining.save_base_model`."""

    dir: str = field(default="runs/pretrain", metadata={"help": "the base model's directory"})
    dtype: Literal["float32", "float16", "bfloat16"] = field(
        default="float32", metadata={"help": "how the final weights are stored"}
    )


@dataclass
class PretrainConfig(Sections):
    """`vitopic pretrain`'s schema, loaded and checked exactly as `Config` is."""

    model: PretrainModelConfig = field(default_factory=PretrainModelConfig)
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    training: PretrainTrainingConfig = field(default_factory=PretrainTrainingConfig)
    output: PretrainOutputConfig = field(default_factory=PretrainOutputConfig)

    def problems(self, check_files: bool = True) -> Problems:
        return self.section_problems()


def schema(cls: type = Config, prefix: str = "") -> list[Key]:
    """Every leaf key of the config, in order, with its type, default and help."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(hints[f.name]):
            keys += schema(hints[f.name], dotted)
        else:
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            keys.append(Key(dotted, _type_name(hints[f.name]), default, f.metadata["help"]))
    return keys


@dataclass(frozen=True)
class Key:
    """One config key as the help and docs/config.md describe it."""

    name: str
    type: str
    default: Any
    help: str

    @property
    def default_yaml(self) -> str:
        """The default as it would be written in YAML."""
        text = yaml.safe_dump(self.default, default_flow_style=True, width=10_000).strip()
        return text.removesuffix("...").strip()


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(typing.get_args(hint))
    if origin is list:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    if origin is dict:
        return "mapping of {} to {}".format(*map(_type_name, typing.get_args(hint)))
    return hint.__name__


def keys_help(root: type = Config, width: int = 100) -> str:
    """Every config key, for `--help`: name, type and default, then what it does."""
    lines = []
    for key in schema(root):
        lines.append(f"  {key.name} ({key.type}; default {key.default_yaml})")
        lines += textwrap.wrap(key.help, width, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


def keys_markdown() -> str:
    """docs/config.md: every key of both schemas (`vitopic train`, `vitopic pretrain`), by section."""
    lines = [
        "# Config keys",
        "",
        "Generated from the schema in `src/vitopic/config.py` (`VITOPIC_WRITE_DOCS=1 python -m pytest "
        "tests/test_config.py`); the tests fail when this page no longer matches it. The same text is "
        "printed by `vitopic train --help` and `vitopic pretrain --help`. Set a key in the YAML file's "
        "section or on the command line as `section.key=value` (a YAML value: `null`, `true`, `[a, b]`).",
    ]
    for root, command in ((Config, "train"), (PretrainConfig, "pretrain")):
        lines += ["", f"# `vitopic {command}`"]
        section = None
        for key in schema(root):
            name = key.name.split(".")[0]
            if name != section:
                section = name
                cls = typing.get_type_hints(root)[name]
                lines += [
                    "",
                    f"## `{name}`",
                    "",
                    " ".join(inspect.cleandoc(cls.__doc__).split()),
                    "",
                    "| key | type | default | what it does |",
                    "|---|---|---|---|",
                ]
            lines.append(f"| `{key.name}` | {key.type} | `{key.default_yaml}` | {key.help} |")
    return "\n".join(lines) + "\n"


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
            raise ConfigError(source, key, f"must be one of {list(choices)}, got {shown(value)}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(source, key, f"must be a list, got {type(value).__name__}")
        return [_check_type(v, item, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        keys, values = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"must be a mapping, got {type(value).__name__}")
        return {
            _check_type(k, keys, source, key): _check_type(v, values, source, f"{key}.{k}")
            for k, v in value.items()
        }
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(source, key, f"must be a finite number, got {shown(value)}")
        return float(value)
    if (hint is int and isinstance(value, bool)) or not isinstance(value, hint):
        raise ConfigError(source, key, f"must be {hint.__name__}, got {shown(value)}")
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
    built = cls(**kwargs)
    if cls is ModelConfig:
        built.given = frozenset(kwargs)
    return built


class _DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: str, line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


class _AliasError(yaml.YAMLError):
    def __init__(self, line: int):
        super().__init__("anchors and aliases (&name, *name) are not allowed in a config")
        self.line = line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (YAML lets
    the last one win silently), and anchors and aliases are refused: a few nested aliases expand
    to billions of values (a "billion laughs" bomb), and a config has no need of them."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasError(event.start_mark.line + 1)
        return super().compose_node(parent, index)

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
    except _AliasError as err:
        raise ConfigError(source, key, f"line {err.line}: {err}; write the value out") from err
    except yaml.YAMLError as err:
        raise ConfigError(source, key, f"not valid YAML: {clip(str(err).splitlines()[0], 200)}") from err
    except (ValueError, RecursionError) as err:  # an int over 4,300 digits; nesting too deep
        message = clip(str(err).split(";")[0], 160) or "nested too deeply"
        raise ConfigError(source, key, f"unreadable value ({message})") from err


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
    root: type = Config,
) -> Any:
    """Load, override and validate a config. A ConfigError names the file and key: the first type
    problem, or every value problem at once."""
    source = str(path) if path is not None else "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(source, "<file>", "is a directory; --config takes a YAML file")
        if not path.exists():
            raise ConfigError(source, "<file>", "config file not found")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as err:
            raise ConfigError(source, "<file>", f"cannot be read ({err.strerror or err})") from err
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
    cfg = _build(root, data, source, "")
    problems = cfg.problems(check_files)
    if problems:
        raise ConfigError(source, *problems[0], *problems[1:])
    return cfg


def save_config(cfg: Config | PretrainConfig, path: str | Path) -> None:
    Path(path).write_text(
        yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
