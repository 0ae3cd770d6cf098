import os
import re
from pathlib import Path

import pytest
from helpers import DATA, ROOT

from vitopic.cli import main
from vitopic.config import (
    Config,
    ConfigError,
    PretrainConfig,
    keys_markdown,
    load_config,
    save_config,
    schema,
)

DOC = ROOT / "docs" / "config.md"

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    if path.name.startswith("pretrain"):
        cfg = load_config(path, root=PretrainConfig)
        assert all(Path(source).name.endswith(".jsonl.xz") for source in cfg.data.sources)
        return
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.data.labels == ["ukraine_aid", "gaza", "nato"]


def test_phobert_configs_start_from_the_hub():
    for name, hub_id in (
        ("phobert-base", "vinai/phobert-base"),
        ("phobert-base-v2", "vinai/phobert-base-v2"),
        ("phobert-large", "vinai/phobert-large"),
    ):
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        assert cfg.model.name_or_path == hub_id
        assert cfg.text.segmenter == "rdrsegmenter"


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(
        ROOT / "configs" / "tiny.yaml",
        [
            "training.learning_rate=0.01",
            "training.epochs=2",
            "output.dir=x/y",
            "training.early_stopping_patience=null",
        ],
    )
    assert cfg.training.learning_rate == 0.01
    assert cfg.training.epochs == 2.0 and isinstance(cfg.training.epochs, float)
    assert cfg.output.dir == "x/y"
    assert cfg.training.early_stopping_patience is None
    assert cfg.training.weight_decay == 0.01  # default kept


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(f"data:\n  dir: {DATA}\n" + text)
    return path


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ("training:\n  learning_rat: 0.1\n", "training.learning_rat", "unknown key"),
        ("training:\n  batch_size: sixteen\n", "training.batch_size", "must be int"),
        ("training:\n  batch_size: 0\n", "training.batch_size", "must be > 0"),
        ("training:\n  learning_rate: -1.0e-3\n", "training.learning_rate", "must be > 0"),
        ("training:\n  bf16: 1\n", "training.bf16", "must be bool"),
        ("text:\n  segmenter: jieba\n", "text.segmenter", "must be one of"),
        ("text:\n  max_length: 512\n", "text.max_length", "258 positions"),
        ("model:\n  mode: softmax\n", "model.mode", "must be one of"),
        ("bogus:\n  a: 1\n", "bogus", "unknown key"),
        ("training: 5\n", "training", "must be a mapping"),
        ("model:\n  hidden_size: 65\n", "model.hidden_size", "divisible"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, body, key, fragment):
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert f": {key}:" in str(err.value)
    assert fragment in str(err.value)


def test_label_list_checks(tmp_path):
    for labels, fragment in (
        ("[]", "at least one label"),
        ("[gaza, gaza]", "unique"),
        ('[" gaza"]', "surrounding spaces"),
        ("[1, 2]", "must be str"),
    ):
        path = tmp_path / "labels.yaml"
        path.write_text(f"data:\n  dir: {DATA}\n  labels: {labels}\n")
        with pytest.raises(ConfigError, match=fragment) as err:
            load_config(path)
        assert "data.labels" in str(err.value)


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  dir: {tmp_path}\n")
    with pytest.raises(ConfigError, match=r"data\.train_file: file not found"):
        load_config(path)


def test_invalid_yaml_and_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(ROOT / "configs" / "tiny.yaml", ["training.epochs"])


def test_exponent_overrides_are_numbers():
    cfg = load_config(ROOT / "configs" / "tiny.yaml", ["training.learning_rate=2e-3"])
    assert cfg.training.learning_rate == 0.002


def test_phobert_config_headers_say_license_segmenter_and_cost():
    for name, license_id in (
        ("phobert-base", "MIT"),
        ("phobert-base-v2", "AGPL-3.0"),
        ("phobert-large", "MIT"),
    ):
        header = (ROOT / "configs" / f"{name}.yaml").read_text().split("\nmodel:")[0]
        for needed in (
            f"vitopic train --config configs/{name}.yaml",
            f"License of the base model: {license_id}",
            "RDRSegmenter",
            "min per epoch",
            "peak RSS",
        ):
            assert needed in header, (name, needed)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.gradient_accumulation_steps=0", "must be > 0"),
        ("training.lr_scheduler_type=cosinus", "must be one of ['linear', 'cosine'"),
        ("training.max_grad_norm=0", "must be > 0"),
        ("training.report_to=wandb", "must be one of ['none', 'tensorboard']"),
        ("training.dataloader_num_workers=-1", "must be >= 0"),
    ],
)
def test_trainer_options_are_checked(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override], check_files=False)


def test_every_value_problem_is_reported_at_once(tmp_path, capsys):
    path = _write(tmp_path, "training:\n  batch_size: 0\n  warmup_ratio: 2.0\nmodel:\n  dropout: 1.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path}: model.dropout: must be in [0, 1)",
        f"{path}: training.batch_size: must be > 0, got 0",
        f"{path}: training.warmup_ratio: must be in [0, 1)",
    ]
    assert err.value.key == "model.dropout" and err.value.source == str(path)
    assert main(["train", "--config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {line}" for line in lines]


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (
            ["model.name_or_path=vinai/phobert-base", "model.hidden_size=128"],
            "model.hidden_size",
            "built from scratch",
        ),
        (["model.revision=refs/pr/3"], "model.revision", "needs model.name_or_path"),
        ([f"model.name_or_path={DATA}", "model.revision=main"], "model.revision", "local directory"),
        (["model.mode=single_label", "training.pos_weight=true"], "training.pos_weight", "multi_label mode"),
        (["data.labels=[none, gaza]", "model.mode=single_label"], "data.labels", "reserved"),
    ],
)
def test_settings_that_would_be_ignored_are_rejected(overrides, key, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        load_config(None, overrides, check_files=False)
    assert err.value.key == key


def test_docs_config_md_is_generated_from_the_schema():
    text = keys_markdown()
    if os.environ.get("VITOPIC_WRITE_DOCS"):
        DOC.write_text(text, "utf-8")
    assert DOC.read_text("utf-8") == text, (
        "docs/config.md is out of date: regenerate it (see its first lines)"
    )
    for key in schema():
        assert f"| `{key.name}` | {key.type} | `{key.default_yaml}` | {key.help} |" in text


def test_train_help_lists_every_key_with_type_default_and_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # help text is wrapped
    for key in schema():
        assert f"{key.name} ({key.type}; default {key.default_yaml}) {key.help}" in out


SHIPPED_CONFIGS = ["tiny.yaml", "mini-phobert.yaml", "phobert-base.yaml", "pretrain-mini.yaml"]


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_a_saved_config_loads_again_as_the_same_config(tmp_path, name):
    """A run directory's config.yaml is a config file: `--config runs/x/config.yaml` works."""
    root = PretrainConfig if name.startswith("pretrain") else Config
    cfg = load_config(ROOT / "configs" / name, root=root)
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml", root=root) == cfg
