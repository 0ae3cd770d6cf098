"""`vitopic evaluate` beyond metrics: wrong predictions, thresholds re-tuned on the file, the card."""

import json
import subprocess
import sys

import pytest
import yaml
from helpers import DATA, HANG, ROOT

from vitopic.cli import main
from vitopic.modelcard import validate_card

TEST = str(DATA / "test.jsonl")
TEST_LINES = (DATA / "test.jsonl").read_text("utf-8").splitlines(keepends=True)


def evaluate(model, out, *options: str) -> int:
    """`vitopic evaluate` of `model` on the test split, writing into `out`."""
    return main(["evaluate", "--model", str(model), "--data", TEST, "--out", str(out), *options])


def test_errors_and_retuned_thresholds_leave_the_model_unless_saved(model_copy, tmp_path, capsys):
    before = (model_copy / "vitopic.json").read_text()
    assert evaluate(model_copy, tmp_path, "--errors", "3", "--tune-thresholds") == 0
    out = capsys.readouterr().out
    wrong = [line for line in out.splitlines() if line.startswith("  [")]
    assert 1 <= len(wrong) <= 3 and "gold" in wrong[0] and "predicted" in wrong[0]
    assert "thresholds tuned on this file:" in out and "optimistic" in out
    assert (model_copy / "vitopic.json").read_text() == before

    assert evaluate(model_copy, tmp_path, "--tune-thresholds", "--save") == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("thresholds"))
    saved = json.loads((model_copy / "vitopic.json").read_text())["thresholds"]
    assert line.endswith(f"nato {json.loads(before)['thresholds'][2]:.2f} -> {saved[2]:.2f}")
    assert main(["predict", "--model", str(model_copy), "Kiev"]) == 0


def test_update_card_adds_the_result(model_copy, tmp_path, capsys):
    assert evaluate(model_copy, tmp_path, "--update-card") == 0
    card = (model_copy / "README.md").read_text()
    assert validate_card(card) == []
    header = yaml.safe_load(card.split("---")[1])
    splits = [r["dataset"]["split"] for r in header["model-index"][0]["results"]]
    assert splits == ["dev", "test", "test.jsonl"]  # the run's dev and test, then this file
    assert "test.jsonl" in json.loads((model_copy / "metrics.json").read_text())["evaluations"]


def test_save_needs_tuning_and_a_local_model(capsys):
    assert main(["evaluate", "--model", "org/model", "--data", TEST, "--save"]) == 2
    assert "give both" in capsys.readouterr().err
    assert main(["evaluate", "--model", "org/model", "--data", TEST, "--tune-thresholds", "--save"]) == 2
    assert "download it first" in capsys.readouterr().err


@pytest.mark.slow
def test_the_eval_recipe_as_a_script(trained_dir, tmp_path):
    """training/eval.py's one run as a real process (the other tests call cli.main)."""
    data = tmp_path / "few.jsonl"
    data.write_text("".join(TEST_LINES[:40]), "utf-8")
    done = subprocess.run(
        [sys.executable, "training/eval.py", "--model", trained_dir, "--data", data, "--out", tmp_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "few.jsonl" in done.stdout and "macro-F1" in done.stdout
    assert json.loads((tmp_path / "eval-few.json").read_text("utf-8"))["metrics"]["macro_f1"] > 0.5
