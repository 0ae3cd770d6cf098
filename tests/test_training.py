"""Training options: determinism, single_label, pos_weight, bf16, main-process-only writes, resume."""

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import PartialState
from helpers import (
    DATA,
    HANG,
    LABELS,
    ROOT,
    TINY,
    VITOPIC,
    quick,
    quick_corpus,
    run_cli,
    spy_on_pos_weight,
    tiny_overrides,
)
from transformers import Trainer, TrainingArguments

from vitopic import TopicClassifier
from vitopic.data import multi_hot, read_jsonl
from vitopic.training import pos_weight_from, train


@pytest.mark.slow
def test_same_seed_gives_the_same_metrics(tmp_path):
    first = train(quick(tmp_path / "a"))
    second = train(quick(tmp_path / "b"))
    assert first.dev == second.dev
    assert first.thresholds == second.thresholds
    np.testing.assert_array_equal(first.dev_scores, second.dev_scores)


@pytest.mark.slow
def test_single_label_mode(tmp_path):
    result = train(quick(tmp_path / "s", "model.mode=single_label"))
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["problem_type"] == "single_label_classification"
    assert config["id2label"] == {"0": "none", "1": "ukraine_aid", "2": "gaza", "3": "nato"}
    clf = TopicClassifier.from_pretrained(result.output_dir)
    predictions = clf.predict(["Israel không kích Rafah.", "Trời mưa to ở Hà Nội."])
    with pytest.raises(ValueError, match="threshold applies to multi_label"):
        clf.predict("Gaza", threshold=0.4)
    for p in predictions:
        assert len(p.labels) <= 1 and set(p.scores) == {"ukraine_aid", "gaza", "nato"}
        assert sum(p.scores.values()) <= 1.0 + 1e-6


@pytest.mark.slow
def test_pos_weight_is_negatives_over_positives_and_reaches_the_loss(tmp_path, monkeypatch):
    targets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)
    assert pos_weight_from(targets).tolist() == [1.0, 3.0, 1.0]
    seen = spy_on_pos_weight(monkeypatch)
    cfg = quick(tmp_path / "p", "training.pos_weight=true", "training.max_steps=20")
    result = train(cfg)
    expected = pos_weight_from(multi_hot(read_jsonl(Path(cfg.data.dir) / "train.jsonl", LABELS), LABELS))
    assert len(seen) >= 20 and all(w is not None and torch.equal(w, expected) for w in seen)
    assert (result.output_dir / "vitopic.json").is_file()
    seen.clear()
    train(quick(tmp_path / "q", "training.max_steps=5"))
    assert seen and all(w is None for w in seen)  # off by default


@pytest.mark.slow
def test_bf16_option_trains_under_bf16_autocast(tmp_path, monkeypatch):
    import vitopic.training

    dtypes: set = set()
    real = vitopic.training.build_model

    def build(*args, **kwargs):
        model = real(*args, **kwargs)
        model.classifier.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
        return model

    monkeypatch.setattr(vitopic.training, "build_model", build)
    result = train(quick(tmp_path / "bf", "training.bf16=true", "training.max_steps=20"))
    assert torch.bfloat16 in dtypes
    assert TopicClassifier.from_pretrained(result.output_dir).predict("Gaza").scores


@pytest.mark.slow
def test_only_the_main_process_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(PartialState, "is_main_process", property(lambda self: False))
    monkeypatch.setattr(TrainingArguments, "should_save", property(lambda self: False))
    out = tmp_path / "replica"
    train(quick(out, "training.max_steps=10", "training.eval_steps=null"))
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    # Trainer keeps one RNG state per process, by design; nothing else comes from a replica.
    assert [p.name for p in written if not p.name.startswith("rng_state")] == []


@pytest.mark.slow
def test_kill_then_resume_finishes_the_planned_steps(tmp_path):
    out = tmp_path / "killed"
    cmd = [
        *VITOPIC,
        "train",
        "--config",
        str(TINY),
        *tiny_overrides(
            out,
            f"data.dir={quick_corpus()}",
            "training.max_steps=100",
            "training.eval_steps=25",
            "training.early_stopping_patience=null",
            "training.save_total_limit=3",
        ),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while not list((out / "checkpoints").glob("checkpoint-*/trainer_state.json")):
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (out / "vitopic.json").exists(), "a killed run must not look finished"
    with pytest.raises(Exception, match="not a finished vitopic checkpoint"):
        TopicClassifier.from_pretrained(out)

    resumed = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=HANG)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "checkpoint-100" not in resumed.stdout
    state = json.loads((out / "checkpoints" / "checkpoint-100" / "trainer_state.json").read_text())
    assert state["global_step"] == 100
    assert TopicClassifier.from_pretrained(out).predict("NATO họp ở Brussels.").scores


@pytest.mark.slow
def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    out = tmp_path / "fresh"
    run = run_cli("train", "--config", TINY, *tiny_overrides(out), "--resume")
    assert run.code == 2
    assert "no checkpoint to resume from" in run.err


@pytest.mark.slow
def test_data_errors_stop_training_before_any_model_loads(tmp_path):
    bad = tmp_path / "data"
    bad.mkdir()
    for split in ("dev", "test", "showcase"):
        (bad / f"{split}.jsonl").write_text((DATA / f"{split}.jsonl").read_text("utf-8"), "utf-8")
    (bad / "train.jsonl").write_text('{"text": "ok", "labels": []}\n{"text": "x", "labels": ["war"]}\n')
    run = run_cli("train", "--config", TINY, f"data.dir={bad}", f"output.dir={tmp_path / 'o'}")
    assert run.code == 2
    assert f"{bad / 'train.jsonl'}:2: unknown label(s) ['war']" in run.err
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_a_diverging_run_stops_with_a_clear_error_and_saves_nothing(tmp_path, monkeypatch):
    from vitopic.training import TopicTrainer, TrainingDivergedError

    def nan_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)
        return (result[0] * float("nan"), result[1]) if return_outputs else result * float("nan")

    monkeypatch.setattr(TopicTrainer, "compute_loss", nan_loss)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDivergedError, match="training loss became nan at step 20"):
        train(quick(out, "training.logging_steps=20"))
    assert not (out / "vitopic.json").exists() and not (out / "model.safetensors").exists()


@pytest.mark.slow
def test_gradient_accumulation_matches_the_larger_batch(tmp_path):
    """Batch 8 x 2 accumulated steps follows batch 16: Trainer would not divide RoBERTa's loss
    (its forward takes **kwargs), doubling the step and the logged loss."""
    losses = {}
    for accumulate in (1, 2):
        result = train(
            quick(
                tmp_path / str(accumulate),
                f"training.batch_size={16 // accumulate}",
                f"training.gradient_accumulation_steps={accumulate}",
                "training.logging_steps=5",
                "training.max_steps=15",
            )
        )
        losses[accumulate] = [row["loss"] for row in result.log_history if "loss" in row]
    assert np.allclose(losses[1], losses[2], rtol=0.02), losses


@pytest.mark.slow
def test_tensorboard_logs_offline(tmp_path):
    train(quick(tmp_path / "run", "training.report_to=tensorboard"))
    assert list((tmp_path / "run" / "checkpoints" / "runs").glob("*/events.out.tfevents.*"))
