"""Runs under faults: nothing lost, nothing mixed (issue 13, items 1-4)."""

import json
import os
import subprocess
import sys

import pytest
from helpers import quick, run_cli

import vitopic.training as training
from vitopic import TopicClassifier
from vitopic.run_dir import LOCK_FILE, RunDirError, locked
from vitopic.training import train

SHORT = ("training.max_steps=40", "training.eval_steps=20")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished quick run, and what its model predicts (the test that overwrites it runs last)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train(quick(out, *SHORT))
    return out, TopicClassifier.from_pretrained(out).predict("Israel không kích Rafah.").scores


def test_a_run_that_fails_leaves_the_previous_model_as_it_was(finished, monkeypatch):
    out, scores = finished
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(RunDirError, match="differ"):  # --resume after changing the model's shape
        train(quick(out, *SHORT, "model.hidden_size=32"), resume=True)

    def crash(self, *args, **kwargs):
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(training.TopicTrainer, "train", crash)
    with pytest.raises(RuntimeError, match="killed"):  # the same config again, crashing
        train(quick(out, *SHORT))
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before and not (out / LOCK_FILE).exists()
    assert TopicClassifier.from_pretrained(out).predict("Israel không kích Rafah.").scores == scores


@pytest.mark.slow
def test_another_config_needs_overwrite_which_removes_every_old_artefact(finished):
    out, _ = finished
    for name in ("model.onnx", "model.int8.onnx", "eval-old.json"):
        (out / name).write_text("stale")
    other = quick(
        out, *SHORT, "training.learning_rate=5e-4", "model.hidden_size=32", "model.num_attention_heads=2"
    )
    with pytest.raises(RunDirError, match="--overwrite"):
        train(other)
    assert (out / "model.onnx").exists()
    train(other, overwrite=True)
    names = {p.name for p in out.iterdir()}
    assert not names & {"model.onnx", "model.int8.onnx", "eval-old.json", ".staging", LOCK_FILE}
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 32
    steps = sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*"))
    assert steps == ["checkpoint-20", "checkpoint-40"]  # only the new run's
    assert TopicClassifier.from_pretrained(out).predict("NATO").scores


def test_a_directory_that_is_not_a_run_is_never_written(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("the project's own README")
    for overwrite in (False, True):
        with pytest.raises(RunDirError, match="holds no vitopic run"):
            train(quick(project, *SHORT), overwrite=overwrite)
    assert [p.name for p in project.iterdir()] == ["README.md"]
    assert (project / "README.md").read_text() == "the project's own README"


def test_two_runs_cannot_share_a_directory(tmp_path):
    out = tmp_path / "busy"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out.mkdir()
        (out / LOCK_FILE).write_text(str(sleeper.pid))
        with pytest.raises(RunDirError, match=f"in use by another run \\(process {sleeper.pid}\\)"):
            train(quick(out, *SHORT))
    finally:
        sleeper.kill()
        sleeper.wait()
    with locked(out):  # the holder is gone: its lock is taken over
        assert (out / LOCK_FILE).read_text() == str(os.getpid())
    assert not (out / LOCK_FILE).exists()


def test_predict_output_is_replaced_only_when_complete(trained_dir, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text('{"previous": "result"}\n')
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"text": "Gaza"}\n{"text": "Gaza \\ud800"}\n')  # a lone surrogate fails the write
    run = run_cli(
        "predict", "--model", trained_dir, "--input", bad, "--output", target, "--segmenter", "none"
    )
    assert run.code == 2 and "lone surrogate" in run.err, run.err
    assert target.read_text() == '{"previous": "result"}\n'
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
