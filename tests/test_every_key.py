"""Every config key changes something observable, or is refused (issue 15 item 1).

The keys come from the schema itself, so a new key without a check here fails. Each check loads a
config with a non-default value for its key (over a small corpus) and asserts the effect: a
TrainingArguments field, the built model or tokenizer, the splits read, or, for the few keys only a
run shows, one short training run shared by those checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import DATA, LABELS, small_corpus, spy_on_pos_weight, subset
from safetensors.torch import load_file

from vitopic.base_model import fetch_base_model
from vitopic.config import Config, ConfigError, ModelConfig, load_config, schema
from vitopic.data import DataError, multi_hot, read_examples
from vitopic.modeling import build_model
from vitopic.text import prepare
from vitopic.training import Splits, encode, make_tokenizer, pos_weight_from, train, training_arguments

DEFAULTS = {key.name: key.default for key in schema()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = small_corpus(tmp_path_factory.mktemp("keys") / "corpus", train=120, dev=40)
    subset(DATA / "train.jsonl", root / "other-train.jsonl", 60)
    subset(DATA / "dev.jsonl", root / "other-dev.jsonl", 25)
    return root


@pytest.fixture(scope="module")
def texts(corpus) -> list[str]:
    return prepare([ex.text for ex in read_examples(corpus / "train.jsonl", LABELS)], "pyvi")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A small pretrained model in a local directory, shaped unlike the from-scratch defaults."""
    directory = tmp_path_factory.mktemp("base")
    tokenizer = make_tokenizer(None, 64)
    tokenizer.save_pretrained(directory)  # PhoBERT's vocab.txt and bpe.codes
    shape = ModelConfig(hidden_size=48, num_hidden_layers=1, num_attention_heads=3, intermediate_size=64)
    build_model(shape, LABELS, 0, tokenizer).save_pretrained(directory)
    return directory


# The keys whose effect only a run shows, and the one short run (6 steps at most, evaluated at each
# step, at a learning rate too small to change dev macro-F1) that shows them.
RUN_VALUES = {
    "model.license": "apache-2.0",
    "data.name": "my-corpus",
    "data.label_descriptions": "{gaza: the war in Gaza}",
    "text.segmenter": "none",
    "training.pos_weight": "true",
    "training.early_stopping_patience": "1",
    "output.dir": "{tmp}/run",
}
RUN_STEPS = ("training.max_steps=6", "training.eval_steps=1", "training.learning_rate=1e-9")


@dataclass
class Run:
    dir: Path
    cfg: Config
    pos_weights: list  # the pos_weight of every BCE loss computed


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Run:
    from vitopic.workflows import train_and_report

    tmp = tmp_path_factory.mktemp("run")
    values = [f"{key}={value.replace('{tmp}', str(tmp))}" for key, value in RUN_VALUES.items()]
    cfg = load_config(None, [f"data.dir={corpus}", *RUN_STEPS, *values])
    with pytest.MonkeyPatch.context() as patch:
        seen = spy_on_pos_weight(patch)
        out = train_and_report(cfg)
    return Run(out, cfg, seen)


@dataclass
class Ctx:
    """What a check gets: its key, the fixtures it asks for, and `load` for the config."""

    key: str
    corpus: Path
    tmp: Path
    request: pytest.FixtureRequest
    values: list = field(default_factory=list)  # the key's value in each config loaded

    def overrides(self, value: str, extra: tuple[str, ...]) -> list[str]:
        return [f"data.dir={self.corpus}", *extra, f"{self.key}={value}"]

    def load(self, value: str, *extra: str) -> Config:
        """The config with `key=value` (over the corpus and any `extra` overrides)."""
        cfg = load_config(None, self.overrides(value, extra))
        section, name = self.key.split(".")
        self.values.append(getattr(getattr(cfg, section), name))
        return cfg

    def refused(self, value: str, fragment: str, *extra: str) -> None:
        """`key=value` is refused with a message naming the key."""
        with pytest.raises(ConfigError, match=fragment) as err:
            load_config(None, self.overrides(value, extra))
        assert self.key in [key for key, _ in err.value.problems], str(err.value)
        self.values.append(f"refused: {value}")

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)


CHECKS: dict[str, Callable[[Ctx], None]] = {}


def check(key: str):
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        assert key not in CHECKS, key
        CHECKS[key] = fn
        return fn

    return register


def _built(cfg: Config, ctx: Ctx):
    """The tokenizer and model a run with `cfg` starts from (as `vitopic.training.train` builds them)."""
    m = cfg.model
    base = fetch_base_model(m.name_or_path, m.revision) if m.name_or_path else None
    tokenizer = make_tokenizer(base, cfg.text.max_length)
    return tokenizer, build_model(m, cfg.data.labels, cfg.training.seed, tokenizer, base)


def _args(cfg: Config):
    return training_arguments(cfg.training, cfg.output.dir)


# model


@check("model.name_or_path")
def _(ctx):
    base_dir = ctx.fixture("base_dir")
    tokenizer, model = _built(ctx.load(str(base_dir)), ctx)
    assert model.config.hidden_size == 48 and len(model.roberta.encoder.layer) == 1
    weights = load_file(base_dir / "model.safetensors")
    name = "roberta.embeddings.word_embeddings.weight"
    assert torch.equal(model.get_parameter(name), weights[name])  # the base's weights, not fresh ones
    assert tokenizer.get_vocab() == fetch_base_model(str(base_dir)).tokenizer(64).get_vocab()


@check("model.revision")
def _(ctx):
    ctx.refused("main", "needs model.name_or_path")
    ctx.refused("main", "is a local directory", f"model.name_or_path={ctx.fixture('base_dir')}")


@check("model.license")
def _(ctx):
    ctx.load(RUN_VALUES[ctx.key])
    header = yaml.safe_load((ctx.fixture("run").dir / "README.md").read_text("utf-8").split("---")[1])
    assert header["license"] == "apache-2.0"


@check("model.mode")
def _(ctx):
    _, model = _built(ctx.load("single_label"), ctx)
    assert model.config.problem_type == "single_label_classification"
    assert model.config.id2label == {0: "none", 1: "ukraine_aid", 2: "gaza", 3: "nato"}


@check("model.hidden_size")
def _(ctx):
    _, model = _built(ctx.load("32"), ctx)
    assert model.roberta.embeddings.word_embeddings.embedding_dim == 32
    ctx.refused("32", "built from scratch", f"model.name_or_path={ctx.fixture('base_dir')}")


@check("model.num_hidden_layers")
def _(ctx):
    _, model = _built(ctx.load("3"), ctx)
    assert len(model.roberta.encoder.layer) == 3


@check("model.num_attention_heads")
def _(ctx):
    _, model = _built(ctx.load("2"), ctx)
    assert model.roberta.encoder.layer[0].attention.self.num_attention_heads == 2


@check("model.intermediate_size")
def _(ctx):
    _, model = _built(ctx.load("96"), ctx)
    assert model.roberta.encoder.layer[0].intermediate.dense.out_features == 96


@check("model.dropout")
def _(ctx):
    for extra in ((), (f"model.name_or_path={ctx.fixture('base_dir')}",)):  # scratch, then pretrained
        _, model = _built(ctx.load("0.3", *extra), ctx)
        dropouts = {m.p for m in model.roberta.encoder.modules() if isinstance(m, torch.nn.Dropout)}
        assert dropouts == {0.3}, (extra, dropouts)


# data


@check("data.dir")
def _(ctx):
    other = small_corpus(ctx.tmp / "other", train=50, dev=20)
    assert len(Splits.load(ctx.load(str(other)).data).train) == 50


@check("data.train_file")
def _(ctx):
    assert len(Splits.load(ctx.load("other-train.jsonl").data).train) == 60
    ctx.refused("absent.jsonl", "file not found")


@check("data.dev_file")
def _(ctx):
    assert len(Splits.load(ctx.load("other-dev.jsonl").data).dev) == 25


@check("data.dev_ratio")
def _(ctx):
    splits = Splits.load(ctx.load("0.25", "data.dev_file=null").data)
    assert (len(splits.dev), len(splits.train)) == (30, 90)
    ctx.refused("0", "must be in")


@check("data.test_file")
def _(ctx):
    assert Splits.load(ctx.load("null", "data.test_ratio=0").data).test is None
    held_out = Splits.load(ctx.load("null").data)
    assert (len(held_out.test), len(held_out.train)) == (12, 108)
    assert len(Splits.load(ctx.load("other-dev.jsonl").data).test) == 25


@check("data.test_ratio")
def _(ctx):
    splits = Splits.load(ctx.load("0.25", "data.test_file=null").data)
    assert (len(splits.test), len(splits.train)) == (30, 90)
    ctx.refused("0.95", "must leave some train examples", "data.dev_file=null", "data.test_file=null")


@check("data.showcase_file")
def _(ctx):
    assert Splits.load(ctx.load("null").data).showcase is None
    assert len(Splits.load(ctx.load("other-dev.jsonl").data).showcase) == 25


@check("data.labels")
def _(ctx):
    cfg = ctx.load("[gaza, nato]")
    _, model = _built(cfg, ctx)
    assert model.config.id2label == {0: "gaza", 1: "nato"}
    with pytest.raises(DataError, match=r"unknown label\(s\) \['ukraine_aid'\]"):
        Splits.load(cfg.data)  # the corpus has ukraine_aid rows: the labels reach the reader


@check("data.name")
def _(ctx):
    ctx.load(RUN_VALUES[ctx.key])
    header = yaml.safe_load((ctx.fixture("run").dir / "README.md").read_text("utf-8").split("---")[1])
    assert header["model-index"][0]["results"][0]["dataset"]["name"] == "my-corpus dev"
    ctx.refused("''", "must not be empty")


@check("data.label_descriptions")
def _(ctx):
    ctx.load(RUN_VALUES[ctx.key])
    assert "| `gaza` | the war in Gaza |" in (ctx.fixture("run").dir / "README.md").read_text("utf-8")
    ctx.refused("{sport: football}", "not one of data.labels")


# text


@check("text.segmenter")
def _(ctx):
    ctx.load(RUN_VALUES[ctx.key])
    run = ctx.fixture("run")
    assert json.loads((run.dir / "vitopic.json").read_text("utf-8"))["segmenter"] == "none"


@check("text.max_length")
def _(ctx):
    cfg = ctx.load("32")
    tokenizer, _ = _built(cfg, ctx)
    assert tokenizer.model_max_length == 32
    texts = ctx.fixture("texts")
    data = encode(tokenizer, texts, np.zeros((len(texts), 3)), cfg.model.head, cfg.text.max_length)
    assert max(len(ids) for ids in data["input_ids"]) == 32


# training: what reaches TrainingArguments
ARGUMENTS = {
    "training.learning_rate": ("0.005", lambda a: a.learning_rate == 0.005),
    "training.batch_size": ("4", lambda a: a.per_device_train_batch_size == 4),
    "training.eval_batch_size": ("8", lambda a: a.per_device_eval_batch_size == 8),
    "training.epochs": ("2", lambda a: a.num_train_epochs == 2.0),
    "training.max_steps": ("7", lambda a: a.max_steps == 7),
    "training.weight_decay": ("0.5", lambda a: a.weight_decay == 0.5),
    "training.warmup_ratio": ("0.5", lambda a: a.get_warmup_steps(100) == 50),
    "training.eval_steps": (
        "5",
        lambda a: (a.eval_strategy, a.eval_steps, a.save_strategy, a.save_steps) == ("steps", 5, "steps", 5),
    ),
    "training.bf16": ("true", lambda a: a.bf16),
    "training.gradient_accumulation_steps": ("4", lambda a: a.gradient_accumulation_steps == 4),
    "training.lr_scheduler_type": ("cosine", lambda a: a.lr_scheduler_type.value == "cosine"),
    "training.max_grad_norm": ("0.5", lambda a: a.max_grad_norm == 0.5),
    "training.group_by_length": ("true", lambda a: a.train_sampling_strategy == "group_by_length"),
    "training.report_to": ("tensorboard", lambda a: a.report_to == ["tensorboard"]),
    "training.dataloader_num_workers": ("2", lambda a: a.dataloader_num_workers == 2),
    "training.torch_compile": ("true", lambda a: a.torch_compile),
    "training.logging_steps": ("3", lambda a: a.logging_steps == 3),
    "training.save_total_limit": ("5", lambda a: a.save_total_limit == 5),
}


def _reaches_training_arguments(ctx):
    value, holds = ARGUMENTS[ctx.key]
    assert holds(_args(ctx.load(value))), ctx.key
    assert not holds(_args(load_config(None, [f"data.dir={ctx.corpus}"]))), "the default holds too"


for _key in ARGUMENTS:
    check(_key)(_reaches_training_arguments)


@check("model.freeze_embeddings")
def _(ctx):
    _, model = _built(ctx.load("true", f"model.name_or_path={ctx.fixture('base_dir')}"), ctx)
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.classifier.out_proj.weight.requires_grad
    ctx.refused("true", "needs model.name_or_path")


@check("training.seed")
def _(ctx):
    cfg = ctx.load("7")
    assert (_args(cfg).seed, _args(cfg).data_seed) == (7, 7)
    first = _built(cfg, ctx)[1].classifier.out_proj.weight
    default = _built(load_config(None, [f"data.dir={ctx.corpus}"]), ctx)[1].classifier.out_proj.weight
    assert not torch.equal(first, default)  # the initial weights


@check("training.fp16")
def _(ctx):
    cfg = ctx.load("true")
    if torch.cuda.is_available():
        assert _args(cfg).fp16
        return
    with pytest.raises(ConfigError, match="needs a CUDA GPU") as err:
        train(cfg)
    assert err.value.key == "training.fp16"


@check("training.pos_weight")
def _(ctx):
    cfg = ctx.load(RUN_VALUES[ctx.key])
    run = ctx.fixture("run")
    train_rows = read_examples(cfg.data.path(cfg.data.train_file), LABELS)
    expected = pos_weight_from(multi_hot(train_rows, LABELS))
    assert run.pos_weights and all(w is not None and torch.equal(w, expected) for w in run.pos_weights)
    ctx.refused("true", "multi_label mode", "model.mode=single_label")


@check("training.early_stopping_patience")
def _(ctx):
    ctx.load(RUN_VALUES[ctx.key])
    state = json.loads((ctx.fixture("run").dir / "metrics.json").read_text("utf-8"))["training"]
    # dev macro-F1 cannot change at this learning rate: patience 1 stops after the second
    # evaluation (step 2 of 6); the default, 3, would run to step 4
    assert state["steps"] == 2, state


# output


@check("output.dir")
def _(ctx):
    run = ctx.fixture("run")
    ctx.load(run.cfg.output.dir)
    assert Path(run.cfg.output.dir) == run.dir
    assert (run.dir / "vitopic.json").is_file() and (run.dir / "checkpoints").is_dir()


KEYS = [key.name for key in schema()]


@pytest.mark.parametrize("key", KEYS)
def test_every_key_changes_something_or_is_refused(key, corpus, tmp_path, request):
    assert key in CHECKS, f"{key}: no check of what it changes; add one to tests/test_every_key.py"
    ctx = Ctx(key, corpus, tmp_path, request)
    CHECKS[key](ctx)
    assert ctx.values, f"{key}: its check never set it"
    assert all(value != DEFAULTS[key] for value in ctx.values), (key, ctx.values)


def test_every_check_is_of_a_key():
    assert set(CHECKS) | set(RUN_VALUES) <= set(KEYS), (set(CHECKS) | set(RUN_VALUES)) - set(KEYS)
