"""The guard against useless models: flagged loudly after training, and kept off the Hub."""

import dataclasses
import json

import pytest
from helpers import TINY, quick_corpus, run_cli, tiny_overrides

from vitopic.evaluation import quality_warnings
from vitopic.metrics import Metrics


def macro(f1: float) -> Metrics:
    return Metrics(micro_f1=f1, macro_f1=f1, exact_match=f1, per_label={})


DEV = macro(0.5)


def test_quality_warnings_cover_both_failure_modes():
    rows = [{"predicted": []}] * 9 + [{"predicted": ["gaza"]}]
    assert quality_warnings(DEV, rows, macro(0.4)) == ["90% of dev sentences get the same labels (none)"]
    mixed = [{"predicted": []}] * 8 + [{"predicted": ["gaza"]}] * 2
    assert quality_warnings(DEV, mixed, macro(0.4)) == []
    assert quality_warnings(DEV, mixed, macro(0.7)) == [
        "dev macro-F1 0.500 is below the TF-IDF + LR baseline's 0.700"
    ]


@pytest.mark.slow
def test_an_undertrained_model_is_flagged_and_not_pushed(tmp_path):
    out = tmp_path / "undertrained"
    run = run_cli(
        "train",
        "--config",
        TINY,
        *tiny_overrides(out, f"data.dir={quick_corpus()}", "training.max_steps=3", "training.eval_steps=3"),
    )
    assert run.code == 0, run.err[-2000:]
    assert run.out.strip().splitlines()[-1].startswith("WARNING: this model is not worth using")
    warnings = json.loads((out / "metrics.json").read_text())["quality_warnings"]
    assert warnings and all(w in run.out for w in warnings)
    for name in ("report.md", "README.md"):
        assert "not worth using" in (out / name).read_text()

    refused = run_cli("push-to-hub", "--model", out, "--repo", "org/name", "--dry-run")
    assert refused.code == 2 and "--force" in refused.err
    forced = run_cli("push-to-hub", "--model", out, "--repo", "org/name", "--dry-run", "--force")
    assert forced.code == 0, forced.err


@pytest.mark.slow
def test_a_model_that_beats_the_baseline_is_not_flagged(tmp_path, monkeypatch, capsys):
    """The other side, through the real workflow: against a baseline it beats, a trained model
    gets no warning anywhere."""
    import vitopic.workflows as workflows
    from vitopic.config import load_config

    real = workflows.run_baseline

    def weak_baseline(cfg, *args, **kwargs):
        results = real(cfg, *args, **kwargs)
        results["dev"] = dataclasses.replace(results["dev"], macro_f1=0.0)
        return results

    monkeypatch.setattr(workflows, "run_baseline", weak_baseline)
    out = tmp_path / "good"
    steps = ("training.max_steps=300", "training.eval_steps=150")
    workflows.train_and_report(load_config(TINY, tiny_overrides(out, f"data.dir={quick_corpus()}", *steps)))
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"model saved to {out}"
    assert json.loads((out / "metrics.json").read_text())["quality_warnings"] == []
    for name in ("report.md", "README.md"):
        assert "not worth using" not in (out / name).read_text()
    pushed = run_cli("push-to-hub", "--model", out, "--repo", "org/name", "--dry-run")
    assert pushed.code == 0, pushed.err
