"""Real multi-process training on CPU (gloo): torchrun and accelerate launch, as users run them."""

import json
import os
import subprocess
import sys

import pytest
from helpers import DATA, HANG, ROOT, tiny_overrides

pytestmark = pytest.mark.slow
SHORT = ["training.eval_steps=10", "training.early_stopping_patience=null"]
BIN = os.path.dirname(sys.executable)


def launch(launcher: list[str], out, *extra: str, steps: int = 20, env=None, timeout=HANG):
    overrides = [*tiny_overrides(out), f"training.max_steps={steps}", *SHORT, *extra]
    return subprocess.run(
        [*launcher, "training/train.py", "--config", "configs/tiny.yaml", *overrides],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


TORCHRUN = [f"{BIN}/torchrun", "--nproc_per_node", "2"]


def test_torchrun_two_processes_write_one_run_like_one_process(tmp_path):
    done = launch(TORCHRUN, tmp_path / "ddp")
    assert done.returncode == 0, done.stderr[-3000:]
    single = launch([sys.executable], tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    names = {p: sorted(q.name for q in (tmp_path / p).iterdir()) for p in ("ddp", "single")}
    assert names["ddp"] == names["single"]
    steps = sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").glob("checkpoint-*"))
    assert steps == ["checkpoint-10", "checkpoint-20"]
    dev = json.loads((tmp_path / "ddp" / "metrics.json").read_text())["dev"]["per_label"]["gaza"]
    dev_rows = len((DATA / "dev.jsonl").read_text("utf-8").splitlines())
    assert dev["tp"] + dev["fp"] + dev["fn"] + dev["tn"] == dev_rows  # the whole split, not a shard
    assert "find_unused_parameters" not in done.stderr

    resumed = launch(TORCHRUN, tmp_path / "ddp", "--resume", steps=30)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "checkpoint-20" in resumed.stdout
    assert (tmp_path / "ddp" / "checkpoints" / "checkpoint-30").is_dir()


def test_accelerate_launch_two_processes(tmp_path):
    done = launch([f"{BIN}/accelerate", "launch", "--num_processes", "2", "--cpu"], tmp_path / "acc")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "acc" / "vitopic.json").is_file()


def test_a_crash_on_one_rank_ends_the_run(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import vitopic.training as t\n"
        "    def crash(self, *a, **k):\n"
        "        raise RuntimeError('rank 1 lost its data')\n"
        "    t.TopicTrainer.train = crash\n"
    )
    done = launch(
        TORCHRUN,
        tmp_path / "crash",
        timeout=HANG,
        env={"PYTHONPATH": f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert done.returncode != 0
    assert "rank 1 lost its data" in done.stderr
    assert not (tmp_path / "crash" / "vitopic.json").exists()
