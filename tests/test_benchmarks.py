"""The benchmark scripts run, and what they build loads: a broken benchmark is found here, not
when someone needs its figures."""

import subprocess
import sys

import pytest
from helpers import HANG, ROOT

pytestmark = pytest.mark.slow


def run(*argv: str, timeout: float = HANG) -> str:
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_gpu_device_check_script_runs():
    out = run("benchmarks/device_check.py", "--smoke", "--device", "cpu")
    assert "training: 4 steps" in out and "prediction: 64 sentences" in out


def test_the_serving_benchmark_prints_its_table(trained_dir):
    out = run(
        "benchmarks/serve.py",
        "--model",
        str(trained_dir),
        "--rounds",
        "1",
        "--seconds",
        "1",
        "--clients",
        "1,4",
    )
    rows = [line for line in out.splitlines() if line.startswith("|") and line[1:].strip()[:1].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "4"]
    assert all(row.rstrip(" |").endswith("0") for row in rows)  # no failed request


def test_the_phobert_base_sized_checkpoint_loads(trained_dir, tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from common import PHOBERT_BASE, base_checkpoint
    finally:
        sys.path.pop(0)
    from vitopic import TopicClassifier

    clf = TopicClassifier.from_pretrained(base_checkpoint(tmp_path / "base", trained_dir))
    assert len(clf.tokenizer) == PHOBERT_BASE["vocab_size"]
    assert clf.predict("NATO họp ở Brussels.").scores


def test_the_quality_benchmark_prints_seeds_beside_the_baselines(tmp_path):
    eval_file = tmp_path / "extra.jsonl"
    eval_file.write_text(
        '{"text": "NATO họp ở Brussels.", "labels": ["nato"]}\n{"text": "Giá vàng tăng.", "labels": []}\n',
        encoding="utf-8",
    )
    out = run(
        "benchmarks/quality.py",
        "--config",
        "configs/tiny.yaml",
        "--seeds",
        "1",
        "2",
        "--few-shot",
        "4",
        "--few-shot-seeds",
        "1",
        "--eval",
        str(eval_file),
        "training.max_steps=20",
        "training.eval_steps=10",
        "model.hidden_size=32",
        "model.num_attention_heads=2",
        "model.intermediate_size=64",
    )
    names = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("|")]
    assert names[2:9] == [
        "keyword rules",
        "TF-IDF + LR",
        "tiny seed 1",
        "tiny seed 2",
        "tiny mean",
        "tiny min",
        "tiny std",
    ]
    assert names[11:] == ["TF-IDF + LR", "tiny"]  # the few-shot table
    assert "extra macro-F1" in out and "test macro-F1" in out and "test N=4" in out


@pytest.mark.parametrize("backend", ["onnx-int8", "onnx"])
def test_the_onnx_profile_splits_kernel_time_by_operator(model_copy, backend):
    out = run("benchmarks/onnx_profile.py", "--model", str(model_copy), "--backend", backend, "--n", "40")
    operators = out.split("\n\n")[1].splitlines()[2:]  # the first table's rows
    shares = {cells[1].strip(): float(cells[2]) for cells in (row.split("|") for row in operators)}
    matmuls = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat"} if backend == "onnx-int8" else {"MatMul"}
    assert matmuls & shares.keys()
    assert 50 < sum(shares.values()) <= 100.1
    assert "GEMMs / best peak (int8) %" in out and "whole graph / best peak (int8) %" in out


def test_the_tokenization_benchmark_prints_its_tables():
    out = run("benchmarks/tokenization.py", "--limit", "20", "--splits", "test", "--segmenters", "pyvi,none")
    tables = [block.splitlines() for block in out.split("\n\n") if block.startswith("|")]
    assert len(tables) == 2  # test.jsonl, then the vocabulary's tone marks

    def cells(line: str) -> list[str]:
        return [cell.strip() for cell in line.strip().strip("|").split("|")]

    header, _, *rows = tables[0]
    assert cells(header)[:3] == ["segmenter", "tone marks", "words/text"]
    assert "<unk> per 1k pieces" in header and "word F1 vs rdrsegmenter" in header
    rows = [cells(row) for row in rows]
    assert [row[:2] for row in rows] == [
        ["pyvi", "old-style"],
        ["pyvi", "as written"],
        ["none", "old-style"],
        ["none", "as written"],
    ]
    for row in rows:
        assert row[9] == "n/a"  # word F1 needs rdrsegmenter, not run here
        numbers = [float(cell) for cell in row[2:9] + row[10:]]
        assert 1 <= numbers[1] < 3 and 0 < numbers[2] <= 100  # pieces per word, single-token %

    header, _, *rows = tables[1]
    assert cells(header)[:2] == ["new style", "old style"]
    assert [cells(row)[0] for row in rows[-4:]] == ["all oa", "all oe", "all uy", "all"]
    assert all(int(cells(row)[2]) >= 0 and float(cells(row)[6]) >= 0 for row in rows[-4:])
    assert "\nconclusion: PhoBERT's vocabulary writes" in out
