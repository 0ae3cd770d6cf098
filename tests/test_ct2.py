"""The CTranslate2 int8 backend (`vitopic export --ct2`, backend="ct2-int8") and backend="auto"."""

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import DATA, HANG, edit_weights, run_cli

pytest.importorskip("ctranslate2")

from vitopic import TopicClassifier
from vitopic.checkpoint import CheckpointError
from vitopic.errors import MissingExtraError
from vitopic.predict import resolve_backend

GAZA = "Israel không kích Rafah, nhiều dân thường thiệt mạng."


@pytest.fixture(scope="module")
def exported(trained_dir, tmp_path_factory) -> Path:
    """A copy of the trained checkpoint with its ct2-int8 export, written once by the CLI."""
    target = tmp_path_factory.mktemp("ct2") / "model"
    shutil.copytree(trained_dir, target, ignore=shutil.ignore_patterns("checkpoints"))
    run = run_cli("export", "--model", target, "--ct2")
    assert run.code == 0 and run.out == f"wrote {target / 'ct2-int8'}\n", run.err[-2000:]
    return target


@pytest.fixture
def exported_copy(exported, tmp_path) -> Path:
    """A private copy of `exported`, for tests that alter files."""
    target = tmp_path / "model"
    shutil.copytree(exported, target, symlinks=True)
    return target


def test_ct2_predictions_agree_with_torch(exported):
    """Scores within int8's error, labels the same on nearly every sentence: measured on this
    model, 863 of 875 test sentences (98.6 %) and all 8 showcase ones, largest score difference
    0.054, mean 0.0024; every difference in labels was a score within 0.02 of its threshold."""
    assert not [p for p in exported.iterdir() if p.name.startswith(".")]  # no temporary directory left
    texts = [
        json.loads(line)["text"]
        for name in ("showcase.jsonl", "test.jsonl")
        for line in (DATA / name).read_text("utf-8").splitlines()
    ]
    torch_clf = TopicClassifier.from_pretrained(exported, backend="torch")
    ct2 = TopicClassifier.from_pretrained(exported, backend="ct2-int8")
    assert (ct2.backend, ct2.device) == ("ct2-int8", torch.device("cpu"))
    reference, scores = torch_clf.predict_proba(texts), ct2.predict_proba(texts)
    difference = np.abs(reference - scores)
    assert difference.mean() < 0.01 and difference.max() < 0.1, (difference.mean(), difference.max())
    agree = sum(
        a.labels == b.labels for a, b in zip(torch_clf.predict(texts), ct2.predict(texts), strict=True)
    )
    assert agree / len(texts) >= 0.97, (agree, len(texts))
    long = " ".join([GAZA] * 60)  # past the 256-token limit: windows, as with torch
    assert ct2.predict(long, split="none").scores == pytest.approx(
        torch_clf.predict(long, split="none").scores, abs=0.1
    )


def test_auto_picks_the_fastest_export_present(trained_dir, tmp_path, monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert resolve_backend("auto", tmp_path, cpu) == "torch"
    for name, backend in [("model.onnx", "onnx"), ("model.int8.onnx", "onnx-int8"), ("ct2-int8", "ct2-int8")]:
        (tmp_path / name).mkdir() if name == "ct2-int8" else (tmp_path / name).touch()
        assert resolve_backend("auto", tmp_path, cpu) == backend
    assert resolve_backend("auto", tmp_path, gpu) == "torch"
    assert resolve_backend("onnx", tmp_path, cpu) == "onnx"  # an explicit backend as it is
    real = importlib.util.find_spec
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *a: None if name == "ctranslate2" else real(name, *a)
    )
    assert resolve_backend("auto", tmp_path, cpu) == "onnx-int8"  # its engine is not installed
    monkeypatch.undo()
    assert TopicClassifier.from_pretrained(trained_dir).backend == "torch"  # no export


def test_auto_loads_ct2_in_python_the_cli_the_server_and_ray(exported, caplog):
    from fastapi.testclient import TestClient

    from vitopic.serving import create_app

    with caplog.at_level("INFO", logger="vitopic.predict"):
        clf = TopicClassifier.from_pretrained(exported)
    assert clf.backend == "ct2-int8"
    assert [r.getMessage() for r in caplog.records if r.name == "vitopic.predict"] == [
        f"{exported}: backend ct2-int8 (auto) on cpu"
    ]
    run = run_cli("predict", "--model", exported, GAZA)
    assert run.code == 0 and run.err == "" and json.loads(run.out)["labels"] == clf.predict(GAZA).labels
    with TestClient(create_app(str(exported))) as http:
        deadline = time.monotonic() + HANG
        while http.get("/health").status_code != 200:  # the model loads in the background
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert http.get("/metadata").json()["backend"] == "ct2-int8"
    pytest.importorskip("pyarrow")
    from vitopic.integrations.ray import Labeler

    assert Labeler(str(exported)).classifier.backend == "ct2-int8"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: shutil.rmtree(d / "ct2-int8"), "ct2-int8: not found"),
        (lambda d: (d / "ct2-int8" / "model.bin").write_bytes(b"garbage"), "not a valid CTranslate2 model"),
        (lambda d: (d / "ct2-int8" / "model.bin").write_bytes(b""), "not a valid CTranslate2 model"),
        (lambda d: (d / "ct2-int8" / "model.bin").unlink(), "not a valid CTranslate2 model"),
        (
            lambda d: (d / "ct2-int8" / "vitopic-source.json").unlink(),
            "vitopic-source.json: no readable fingerprint of its checkpoint",
        ),
        (
            lambda d: edit_weights(d, lambda t: t["classifier.out_proj.bias"].add_(1.0)),
            "vitopic-source.json: stale: written for other weights than this checkpoint's",
        ),
    ],
    ids=["missing", "garbage", "empty", "no model.bin", "no fingerprint", "stale"],
)
def test_a_missing_corrupt_or_stale_export_is_one_line_naming_it(exported_copy, change, fragment):
    change(exported_copy)
    with pytest.raises(CheckpointError) as raised:
        TopicClassifier.from_pretrained(exported_copy, backend="ct2-int8")
    message = str(raised.value)
    assert "\n" not in message and str(exported_copy / "ct2-int8") in message and fragment in message
    assert message.endswith(f"run `vitopic export --model {exported_copy} --ct2`")


def test_an_export_linked_from_outside_the_checkpoint_is_refused(exported_copy, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(exported_copy / "ct2-int8", outside)
    (exported_copy / "ct2-int8").symlink_to(outside)
    with pytest.raises(CheckpointError, match="outside the checkpoint; refused"):
        TopicClassifier.from_pretrained(exported_copy, backend="ct2-int8")


def test_a_failed_export_leaves_the_old_one_whole(exported_copy, monkeypatch):
    import ctranslate2

    before = {p.name: p.read_bytes() for p in (exported_copy / "ct2-int8").iterdir()}

    def fail(self, output_dir, **kwargs):
        Path(output_dir, "model.bin").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ctranslate2.converters.TransformersConverter, "convert", fail)
    run = run_cli("export", "--model", exported_copy, "--ct2")
    assert run.code == 2 and "disk full" in run.err
    assert {p.name: p.read_bytes() for p in (exported_copy / "ct2-int8").iterdir()} == before
    assert not [p for p in exported_copy.iterdir() if p.name.startswith(".")]


def test_without_ctranslate2_the_error_names_the_extra(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # import fails as if absent
    with pytest.raises(MissingExtraError, match=r"needs ctranslate2: pip install 'vitopic\[ct2\]'"):
        TopicClassifier.from_pretrained(exported, backend="ct2-int8")
    run = run_cli("export", "--model", exported, "--ct2")
    assert run.code == 2 and "pip install 'vitopic[ct2]'" in run.err
    assert run_cli("export", "--model", exported, "--ct2", "--int8").code == 2  # one kind at a time
