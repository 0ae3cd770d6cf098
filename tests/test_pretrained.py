"""The phobert-* configs fine-tune from replicas of the real `vinai/phobert-*` Hub repos, safely."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml
from helpers import DATA, HANG, ROOT, Ran, run_cli
from hub_replica import (
    PICKLE_MARKER,
    REMOTE_CODE_MARKER,
    REPOS,
    build_phobert_replica,
    phobert_files,
    place_snapshot,
)
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError
from transformers import AutoTokenizer

from vitopic.base_model import BaseModelError, fetch_base_model
from vitopic.text import java_available
from vitopic.tokenizer import PHOBERT_TOKENIZER_DIR, phobert_tokenizer

SEGMENTER = "rdrsegmenter" if java_available() else "pyvi"
SAMPLE = [
    "Các đồng minh NATO cam kết gửi thêm hệ thống phòng không cho Ukraine.",
    "Israel không kích Rafah , hàng chục người thiệt mạng .",
    "Giá vàng SJC tăng mạnh",
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """An HF cache holding the three replicas (and a small data dir), plus the marker dir."""
    root = tmp_path_factory.mktemp("phobert-hub")
    for repo_id in REPOS:
        build_phobert_replica(root / "cache", repo_id, root / "markers")
    data = root / "data"
    data.mkdir()
    for split, n in (("train", 160), ("dev", 60), ("test", 60), ("showcase", 8)):
        lines = (DATA / f"{split}.jsonl").read_text("utf-8").splitlines()
        lines = lines[:: max(len(lines) // n, 1)][:n]  # spread over the file: every label present
        (data / f"{split}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    (root / "markers").mkdir()
    return root


@pytest.fixture
def offline_cache(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub / "cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub / "cache"))
    return hub / "cache"


def _train(hub, config, out, *extra, script=False) -> Ran:
    """A short fine-tune from the replica cache (which `offline_cache` must point at): in this
    process through cli.main, or, with `script`, as training/train.py in a real process."""
    args = [
        "--config",
        f"configs/{config}.yaml",
        f"data.dir={hub / 'data'}",
        f"output.dir={out}",
        "training.max_steps=8",
        "training.eval_steps=4",
        "training.batch_size=8",
        f"text.segmenter={SEGMENTER}",
        *extra,
    ]
    if not script:
        return run_cli("train", *args)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub / "cache")}
    done = subprocess.run(
        [sys.executable, "training/train.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize(
    "config",
    [
        "phobert-base",
        pytest.param("phobert-base-v2", marks=pytest.mark.slow),
        pytest.param("phobert-large", marks=pytest.mark.slow),
    ],
)
def test_phobert_config_fine_tunes_from_the_hub_repo_as_it_is(
    hub, offline_cache, tmp_path, monkeypatch, config
):
    repo_id = f"vinai/{config}"
    out = tmp_path / "run"
    monkeypatch.chdir(ROOT)  # the configs' relative paths
    run = _train(hub, config, out, script=config == "phobert-base")  # training/train.py's one real run
    assert run.code == 0, run.err[-3000:]
    assert not (hub / "markers" / REMOTE_CODE_MARKER).exists()

    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" in files and not files & {
        "pytorch_model.bin",
        "tokenizer.json",
        "tokenization_phobert.py",
    }
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["problem_type"] == "multi_label_classification"
    assert config_json["id2label"] == {"0": "ukraine_aid", "1": "gaza", "2": "nato"}
    assert config_json["num_hidden_layers"] == REPOS[repo_id]["layers"]
    meta = json.loads((out / "vitopic.json").read_text())
    assert meta["base_model"] == repo_id and meta["segmenter"] == SEGMENTER

    base = phobert_tokenizer()
    tuned = AutoTokenizer.from_pretrained(out)
    assert type(tuned).__name__ == "PhobertTokenizer" and tuned.model_max_length == 256
    assert tuned(SAMPLE)["input_ids"] == base(SAMPLE)["input_ids"]
    assert (out / "vocab.txt").read_bytes() == (PHOBERT_TOKENIZER_DIR / "vocab.txt").read_bytes()

    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert header["base_model"] == repo_id
    assert header["license"] == ("agpl-3.0" if config == "phobert-base-v2" else "mit")


@pytest.mark.slow
def test_run_metrics_equal_vitopic_evaluate(hub, offline_cache, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.chdir(ROOT)
    assert _train(hub, "phobert-base", out).code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("dev", "test"):
        run = run_cli(
            "evaluate", "--model", out, "--data", hub / "data" / f"{split}.jsonl", "--out", tmp_path / "eval"
        )
        assert run.code == 0, run.err[-2000:]
        evaluated = json.loads((tmp_path / "eval" / f"eval-{split}.json").read_text())["metrics"]
        assert evaluated == metrics[split]


def test_a_conversion_revision_loads_safetensors(offline_cache):
    base = fetch_base_model("vinai/phobert-base", revision="refs/pr/3")
    assert base.weights == "safetensors" and (base.directory / "model.safetensors").is_file()
    main = fetch_base_model("vinai/phobert-base")
    assert main.weights == "pickle" and not (main.directory / "model.safetensors").exists()
    pickled = main.classifier(num_labels=3, problem_type="multi_label_classification")
    converted = base.classifier(num_labels=3, problem_type="multi_label_classification")
    for (name, a), b in zip(
        pickled.roberta.state_dict().items(), converted.roberta.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


def test_a_pickle_that_would_run_code_is_refused_unrun(hub, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    build_phobert_replica(cache, "vinai/phobert-base", tmp_path, evil_pickle=True)
    evil = phobert_files("vinai/phobert-base", tmp_path / "proof", evil_pickle=True)["pytorch_model.bin"]
    (tmp_path / "proof").mkdir()
    (tmp_path / "proof" / "evil.bin").write_bytes(evil)
    torch.load(tmp_path / "proof" / "evil.bin", weights_only=False)  # the danger is real ...
    assert (tmp_path / "proof" / PICKLE_MARKER).exists()

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    run = run_cli(
        "train",
        "--config",
        ROOT / "configs" / "phobert-base.yaml",
        f"data.dir={hub / 'data'}",
        f"output.dir={tmp_path / 'out'}",
        f"text.segmenter={SEGMENTER}",
    )
    assert run.code == 2  # ... and vitopic never runs it
    assert not (tmp_path / PICKLE_MARKER).exists()
    assert "would run code" in run.err and "Traceback" not in run.err
    assert len(run.err.strip().splitlines()) == 1


def _one_line_error(*args, **kwargs) -> str:
    with pytest.raises(BaseModelError) as err:
        fetch_base_model(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_clear_errors_for_every_way_a_base_model_can_be_missing(offline_cache, hub, tmp_path):
    assert "config.json not found" in _one_line_error("vinai/phobert-huge")
    assert "HF_HUB_OFFLINE" in _one_line_error("vinai/phobert-huge")
    assert "vinai/phobert-base@v9" in _one_line_error("vinai/phobert-base", revision="v9")
    assert "not a valid Hub id" in _one_line_error("not a repo/with/slashes")

    files = phobert_files("vinai/phobert-base", tmp_path)
    for name in ("pytorch_model.bin", "_safetensors"):
        files.pop(name)
    place_snapshot(offline_cache, "vinai/phobert-base", files, "no-weights")
    assert "no model.safetensors or pytorch_model.bin" in _one_line_error(
        "vinai/phobert-base", revision="no-weights"
    )
    for missing in ("vocab.txt", "bpe.codes"):
        local = tmp_path / f"without-{missing}"
        local.mkdir()
        for name, data in files.items():
            if name != missing:
                (local / name).write_bytes(data)
        assert f"{missing} not found" in _one_line_error(str(local))
        assert "vocab.txt and bpe.codes" in _one_line_error(str(local))


def test_an_unparseable_tokenizer_json_is_never_read(hub, tmp_path):
    local = tmp_path / "base"
    local.mkdir()
    for name, data in phobert_files("vinai/phobert-base", tmp_path).items():
        (local / name).write_bytes(data)
    (local / "tokenizer.json").write_text("{not json")
    base = phobert_tokenizer()
    assert fetch_base_model(str(local)).tokenizer(256)(SAMPLE)["input_ids"] == base(SAMPLE)["input_ids"]


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (RepositoryNotFoundError, "no such model repository"),
        (GatedRepoError, "gated repository"),
        (RevisionNotFoundError, "revision not found"),
        (ConnectionError, "could not fetch config.json"),
    ],
)
def test_the_hubs_answers_become_one_line_errors(monkeypatch, error, says):
    """What the Hub answers online (simulated here: no network), each mapped to a next step."""

    def refuse(*args, **kwargs):
        if issubclass(error, ConnectionError):
            raise error("network unreachable")
        raise error("refused", response=SimpleNamespace(headers={}, status_code=404, request=None))

    monkeypatch.setattr("vitopic.hub.hf_hub_download", refuse)
    assert says in _one_line_error("vinai/phobert-base", revision="main")
