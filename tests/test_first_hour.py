"""A new user's first hour (issue 27, parts 1 and 2): signs of life while training, predicting
and evaluating; one labeled file and no config is enough; every bad row is named."""

import csv
import dataclasses
import json
import signal
import subprocess
import time
from collections import Counter

import pytest
from helpers import DATA, HANG, ROOT, TINY, VITOPIC, quick_corpus, run_cli, tiny_overrides

from vitopic import progress
from vitopic.cli import build_parser, train_config
from vitopic.config import ConfigError, load_config
from vitopic.data import MAX_SHOWN, DataError, read_examples
from vitopic.run_dir import LOCK_FILE
from vitopic.training import Splits

RENAMED = {"ukraine_aid": "kinh_te", "gaza": "the_thao"}  # the user's own labels
SMALL = ("model.hidden_size=64", "model.num_attention_heads=2", "model.intermediate_size=128")
SHORT = ("training.max_steps=20", "training.eval_steps=10", "training.early_stopping_patience=null")


@pytest.fixture
def every_update(monkeypatch):
    """A plain progress line at every update (as if each step took 30 s)."""
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)


def _users_csv(path, rows: int = 400) -> None:
    """`rows` rows of the shipped train split as a CSV with the user's labels (nato rows dropped)."""
    examples = [ex for ex in read_examples(DATA / "train.jsonl", None) if "nato" not in ex.labels]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "labels"])
        for ex in examples[:: len(examples) // rows][:rows]:
            writer.writerow([ex.id, ex.text, ";".join(RENAMED[lab] for lab in ex.labels)])


def _short_way(data, out, *extra: str) -> list[str]:
    """`vitopic train --data FILE --labels ... --output DIR`'s arguments."""
    return ["train", "--data", str(data), "--labels", "kinh_te,the_thao", "--output", str(out), *extra]


def test_the_short_way_starts_from_the_offline_default(tmp_path):
    data = tmp_path / "my.csv"
    _users_csv(data, rows=120)
    cfg = train_config(build_parser().parse_args(_short_way(data, "runs/mine", "training.seed=3")))
    default = load_config(ROOT / "configs" / "mini-phobert.yaml")
    assert cfg.model == default.model and cfg.text == default.text
    assert cfg.training == dataclasses.replace(default.training, seed=3)
    assert (cfg.data.dir, cfg.data.train_file, cfg.data.labels) == (
        str(tmp_path),
        "my.csv",
        ["kinh_te", "the_thao"],
    )
    assert (cfg.data.dev_file, cfg.data.test_file, cfg.data.showcase_file, cfg.output.dir) == (
        None,
        None,
        None,
        "runs/mine",
    )


def test_one_file_and_no_config_trains_with_held_out_splits_and_says_so(tmp_path, every_update):
    data, out = tmp_path / "my.csv", tmp_path / "runs" / "mine"
    _users_csv(data, rows=200)
    # The tiny config rather than the offline default: quick, and no base model needed.
    run = run_cli(*_short_way(data, out, "--config", TINY, "text.segmenter=pyvi", *SMALL, *SHORT))
    assert run.code == 0, run.err

    cfg = load_config(out / "config.yaml")
    assert (cfg.data.dev_file, cfg.data.test_file, cfg.data.labels) == (None, None, ["kinh_te", "the_thao"])
    saved = json.loads((out / "splits.json").read_text("utf-8"))
    assert saved["seed"] == 42 and saved["shares"] == {"dev": 0.1, "test": 0.1}
    assert (len(saved["dev"]), len(saved["test"])) == (20, 20) and not set(saved["dev"]) & set(saved["test"])

    lines = run.out.splitlines()
    banner = next(line for line in lines if line.startswith("data: "))
    assert banner.startswith(
        "data: train 160, dev 20 (10% of my.csv, stratified, seed 42), test 20 (10% of my.csv"
    )
    assert "splits.json" in banner and "labels kinh_te, the_thao" in banner
    assert any(line.startswith("model: from scratch: hidden 64, 2 layers, 2 heads") for line in lines)
    schedule = next(line for line in lines if line.startswith("device cpu"))
    assert "fp32" in schedule and "10 steps per epoch, 20 in all" in schedule and "every 10 steps" in schedule
    assert lines.index(banner) < next(i for i, line in enumerate(lines) if line.startswith("step    10/20"))
    assert "train: 20/20 steps (100%)" in run.err and "steps/s" in run.err and "left" in run.err
    assert lines[-1] == f"model saved to {out}" or lines[-1].startswith("WARNING")


def test_held_out_splits_are_stratified_and_seeded(tmp_path):
    data = tmp_path / "my.csv"
    _users_csv(data, rows=600)
    cfg = load_config(
        None,
        [
            f"data.dir={tmp_path}",
            "data.train_file=my.csv",
            "data.dev_file=null",
            "data.test_file=null",
            "data.showcase_file=null",
            "data.labels=[kinh_te, the_thao]",
            "data.dev_ratio=0.2",
        ],
    )
    splits = Splits.load(cfg.data, seed=1)
    whole = Counter(tuple(ex.labels) for ex in read_examples(data, None))
    dev = Counter(tuple(ex.labels) for ex in splits.dev)
    assert all(abs(dev[key] - 0.2 * n) <= 1 for key, n in whole.items()), (dev, whole)
    assert len(splits.train) + len(splits.dev) + len(splits.test) == 600
    assert [ex.id for ex in Splits.load(cfg.data, seed=1).dev] == [ex.id for ex in splits.dev]
    assert [ex.id for ex in Splits.load(cfg.data, seed=2).dev] != [ex.id for ex in splits.dev]


def test_quiet_prints_only_the_final_lines(tmp_path):
    data, out = tmp_path / "my.csv", tmp_path / "quiet"
    _users_csv(data, rows=120)
    steps = ("training.max_steps=2", "training.eval_steps=1")
    run = run_cli(*_short_way(data, out, "--quiet", "--config", TINY, "text.segmenter=pyvi", *SMALL, *steps))
    assert run.code == 0, run.err
    assert "train:" not in run.err and "error" not in run.err
    lines = run.out.splitlines()
    assert lines[0] == f"model saved to {out}" and all(line.startswith("WARNING") for line in lines[1:])


def test_missing_dev_and_test_files_say_what_to_set(tmp_path):
    (tmp_path / "train.jsonl").write_text((DATA / "showcase.jsonl").read_text("utf-8"), "utf-8")
    run = run_cli("train", "--config", TINY, f"data.dir={tmp_path}", "data.showcase_file=null")
    assert run.code == 2
    assert "set data.dev_file=null to hold dev out of the train file" in run.err
    assert "set data.test_file=null" in run.err


def test_sigterm_says_how_to_resume_and_releases_the_lock(tmp_path):
    out = tmp_path / "stopped"
    cmd = [
        *VITOPIC,
        "train",
        "--config",
        str(TINY),
        *tiny_overrides(
            out,
            f"data.dir={quick_corpus()}",
            "training.max_steps=400",
            "training.eval_steps=5",
            "training.early_stopping_patience=null",
        ),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "no checkpoint within 600 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=HANG)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "training stopped (SIGTERM); the last checkpoint is " in stderr
    assert "run the same command with --resume" in stderr
    assert not (out / LOCK_FILE).exists()
    assert stdout.startswith("reading ")  # the banner came first


def test_predict_and_evaluate_show_progress_in_texts(model_copy, tmp_path, every_update):
    texts = tmp_path / "in.txt"
    texts.write_text("NATO họp ở Brussels.\n" * 9 + "Giá vàng tăng.", "utf-8")
    run = run_cli("predict", "--model", model_copy, "--input", texts, "--output", tmp_path / "out.jsonl")
    assert run.code == 0, run.err
    assert "predict: 10/10 texts (100%)" in run.err

    run = run_cli("evaluate", "--model", model_copy, "--data", DATA / "showcase.jsonl", "--out", tmp_path)
    assert run.code == 0, run.err
    assert "evaluate: 8/8 texts (100%)" in run.err


def test_schema_defaults_are_the_tiny_config_that_trains():
    defaults, tiny = load_config(None), load_config(TINY)
    for section, keys in (
        ("model", ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")),
        ("training", ("learning_rate", "batch_size", "epochs")),
        ("text", ("segmenter",)),
    ):
        for key in keys:
            assert getattr(getattr(defaults, section), key) == getattr(getattr(tiny, section), key), key


def test_a_pretrained_base_refuses_every_shape_key_that_was_set(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  name_or_path: some/model\n  num_hidden_layers: 2\n  hidden_size: 99\n")
    with pytest.raises(ConfigError) as err:
        load_config(config, ["model.intermediate_size=256"], check_files=False)
    assert [key for key, _ in err.value.problems] == [
        "model.hidden_size",  # not divisible by the heads: its own problem first
        "model.hidden_size",
        "model.num_hidden_layers",
        "model.intermediate_size",
    ]
    assert load_config(None, ["model.name_or_path=some/model"], check_files=False).model.hidden_size == 128


def _bad_rows(path, bad: int) -> None:
    good = [json.dumps({"text": f"câu số {i}", "labels": ["gaza"]}) for i in range(12)]
    wrong = [json.dumps({"text": f"câu {i}", "labels": ["war"]}) for i in range(bad)]
    path.write_text("\n".join(good + wrong) + "\n", "utf-8")


def test_every_bad_row_is_named_up_to_a_cap(tmp_path):
    _bad_rows(tmp_path / "rows.jsonl", 25)
    with pytest.raises(DataError) as err:
        read_examples(tmp_path / "rows.jsonl", ["gaza"])
    lines = str(err.value).splitlines()
    assert len(lines) == MAX_SHOWN + 1 and lines[-1] == "... and 5 more"
    assert lines[0].startswith(f"{tmp_path / 'rows.jsonl'}:13: unknown label(s) ['war']")
    assert lines[MAX_SHOWN - 1].startswith(f"{tmp_path / 'rows.jsonl'}:32: ")

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _bad_rows(corpus / "train.jsonl", 3)
    run = run_cli(
        "train",
        "--config",
        TINY,
        f"data.dir={corpus}",
        "data.dev_file=null",
        "data.test_file=null",
        "data.showcase_file=null",
        f"output.dir={tmp_path / 'o'}",
    )
    assert run.code == 2
    assert [line.split(": ")[1].rsplit(":", 1)[1] for line in run.err.splitlines()] == ["13", "14", "15"]


def test_data_check_names_every_bad_row_without_an_empty_table(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _bad_rows(corpus / "train.jsonl", 22)
    monkeypatch.chdir(tmp_path)
    run = run_cli("data", "check", "--labels", "gaza")  # no argument: ./corpus
    assert run.code == 1
    lines = run.out.splitlines()
    assert lines[0].startswith("ERROR corpus/train.jsonl:13: unknown label(s)")
    assert lines[MAX_SHOWN] == "ERROR ... and 2 more"
    assert lines[-1] == "24 problem(s)"  # 22 rows; dev and test missing
