"""`vitopic pretrain`: a tiny masked-LM run end to end on real files, stopped and resumed, whose
output is a base model that plain transformers loads and `model.name_or_path` fine-tunes."""

import gzip
import json
import signal
import subprocess

import pytest
import torch
from helpers import DATA, QUICK, ROOT, VITOPIC, quick_corpus, run_cli
from safetensors.torch import load_file
from transformers import AutoModelForMaskedLM, AutoTokenizer

from vitopic.config import ConfigError, PretrainConfig, load_config
from vitopic.pretrain_data import Prepared, iter_documents, pack, sequence
from vitopic.pretraining import MASK, mask_tokens
from vitopic.tokenizer import PHOBERT_TOKENIZER_DIR

CONFIG = ROOT / "configs" / "pretrain-mini.yaml"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The corpus's own train sentences as unlabeled text, in two of the accepted formats."""
    root = tmp_path_factory.mktemp("pretrain-text")
    lines = (DATA / "train.jsonl").read_text("utf-8").splitlines()
    with gzip.open(root / "news.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines[:300])
    texts = [json.loads(line)["text"] for line in lines[300:500]]
    (root / "more.txt").write_text("\n".join(texts) + "\n", "utf-8")
    return root


def _args(sources, out, *extra) -> list[str]:
    return [
        "--config",
        str(CONFIG),
        f"data.sources=[{sources / 'news.jsonl.gz'}, {sources / 'more.txt'}]",
        f"data.cache_dir={sources / 'cache'}",
        "data.segmenter=pyvi",
        "data.holdout_every=10",
        "model.hidden_size=32",
        "model.num_attention_heads=2",
        "model.intermediate_size=64",
        "model.num_hidden_layers=1",
        "model.embedding_init=random",
        "training.batch_size=8",
        "training.seq_length=64",
        "training.warmup_steps=2",
        "training.max_steps=12",
        "training.eval_steps=6",
        "training.eval_sequences=8",
        "training.log_seconds=0.001",
        "training.threads=1",
        f"output.dir={out}",
        *extra,
    ]


@pytest.fixture(scope="module")
def pretrained(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained") / "mini"
    ran = run_cli("pretrain", *_args(sources, out))
    assert ran.code == 0, ran.err
    return out, ran


def test_the_output_is_a_base_model_in_phoberts_layout(pretrained):
    out, ran = pretrained
    for name in ("config.json", "model.safetensors", "vocab.txt", "bpe.codes", "LICENSE-VinAI-PhoBERT"):
        assert (out / name).is_file(), name
    for name in ("vocab.txt", "bpe.codes"):
        assert (out / name).read_bytes() == (PHOBERT_TOKENIZER_DIR / name).read_bytes()
    config = json.loads((out / "config.json").read_text())
    assert config["tokenizer_class"] == "PhobertTokenizer" and config["vocab_size"] == 64001
    assert config["max_position_embeddings"] == 258 and config["pad_token_id"] == 1
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert type(model).__name__ == "RobertaForMaskedLM"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("Tôi là sinh_viên")["input_ids"] == [0, 218, 8, 649, 2]
    assert model(**tokenizer(["Hà_Nội <mask> ."], return_tensors="pt")).logits.shape[-1] == 64001
    metrics = json.loads((out / "pretrain_metrics.json").read_text())
    assert metrics["step"] == 12 and metrics["tokens"] > 0
    assert [h["step"] for h in metrics["heldout"]] == [6, 12]
    assert set(metrics["heldout"][-1]["loss"]) == {"news", "more"}
    card = (out / "README.md").read_text()
    assert "| `news` |" in card and "perplexity" in card and "1 × 32" in card
    # It speaks: a start line, progress with time left, held-out figures, the end.
    assert "pretrain: " in ran.out and "min left" in ran.out and "held-out at step 6" in ran.out
    assert f"base model written to {out}" in ran.out


def test_the_prepared_text_is_cached_once(pretrained, sources):
    _, ran = pretrained
    assert ran.out.count("preparing news.jsonl.gz") == 1
    again = run_cli("pretrain", *_args(sources, sources / "again", "training.max_steps=1"))
    assert again.code == 0 and "preparing" not in again.out


@pytest.mark.slow
def test_a_stopped_run_resumes_to_the_same_weights(pretrained, sources, tmp_path):
    """SIGTERM saves the state; --resume continues exactly as the unbroken run went on."""
    out = tmp_path / "stopped"
    args = [*VITOPIC, "pretrain", *_args(sources, out, "training.max_steps=12")]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "step 3/12" in line:
            proc.send_signal(signal.SIGTERM)
    assert proc.wait(120) == 0, "".join(lines)
    assert any("continue with --resume" in line for line in lines)
    stopped_at = json.loads((out / "state" / "progress.json").read_text())["step"]
    assert 3 <= stopped_at < 12 and not (out / "model.safetensors").exists()

    refused = run_cli("pretrain", *_args(sources, out))
    assert refused.code == 2 and "--resume" in refused.err
    resumed = run_cli("pretrain", *_args(sources, out), "--resume")
    assert resumed.code == 0, resumed.err
    assert f"from step {stopped_at}" in resumed.out
    unbroken, again = load_file(pretrained[0] / "model.safetensors"), load_file(out / "model.safetensors")
    for key, tensor in unbroken.items():
        torch.testing.assert_close(again[key], tensor, rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_the_shipped_encoder_fine_tunes_through_name_or_path(pretrained, tmp_path):
    """The same `base_model` path as vinai/phobert-base: a local directory, no special case."""
    out = tmp_path / "run"
    ran = run_cli(
        "train",
        "--config",
        ROOT / "configs" / "mini-phobert.yaml",
        f"model.name_or_path={pretrained[0]}",
        f"data.dir={quick_corpus()}",
        f"output.dir={out}",
        "text.segmenter=pyvi",
        *QUICK,
    )
    assert ran.code == 0, ran.err
    meta = json.loads((out / "vitopic.json").read_text())
    assert meta["base_model"] == str(pretrained[0])
    config = json.loads((out / "config.json").read_text())
    assert config["hidden_size"] == 32 and config["problem_type"] == "multi_label_classification"


def test_masking_follows_robertas_rule():
    ids = torch.randint(4, MASK, (64, 128), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    inputs, chosen, targets = mask_tokens(ids, special, 0.15, torch.Generator().manual_seed(1))
    assert not chosen[:, 0].any() and torch.equal(targets, ids[chosen])
    share = chosen.float().mean().item()
    masked = (inputs[chosen] == MASK).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert 0.13 < share < 0.17 and 0.77 < masked < 0.83 and 0.07 < kept < 0.13
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_packing_keeps_sentences_whole_and_separates_documents():
    import numpy as np

    lengths = [3, 4, 5, 2, 9]
    prepared = Prepared(
        np.arange(4, 4 + sum(lengths), dtype=np.uint16),
        np.cumsum(lengths),
        np.array([True, False, True, False, False]),
    )
    spans = pack(prepared, 10)
    assert spans.tolist() == [[0, 2], [2, 4], [4, 5]]
    assert sequence(prepared, 0, 2, 10).tolist() == list(range(4, 11))
    first_doc_end = sequence(prepared, 0, 3, 20).tolist()
    assert first_doc_end[7] == 2  # </s> before the second document
    assert len(sequence(prepared, 4, 5, 5)) == 5  # a sentence longer than the sequence is cut


def test_a_bad_source_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "Một câu ."}\n{"text": 3}\n', "utf-8")
    with pytest.raises(Exception, match=r"bad.jsonl:2: needs a string \"text\" field"):
        list(iter_documents(bad))


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        load_config(
            CONFIG,
            ["model.hidden_size=30", "training.mask_prob=1.5", "training.seq_length=512", "data.sources=[]"],
            root=PretrainConfig,
        )
    keys = [key for key, _ in err.value.problems]
    assert keys == ["model.hidden_size", "data.sources", "training.seq_length", "training.mask_prob"]
    assert str(CONFIG) in str(err.value)


def test_a_base_model_whose_weights_lack_the_encoder_is_refused(pretrained, tmp_path):
    """Weights of another architecture would leave the encoder random, silently: refused instead."""
    import shutil

    from safetensors.torch import save_file

    from vitopic.base_model import BaseModelError, fetch_base_model

    broken = tmp_path / "broken"
    shutil.copytree(pretrained[0], broken, ignore=shutil.ignore_patterns("state"))
    tensors = load_file(broken / "model.safetensors")
    save_file({k.replace("roberta.", "bert."): v for k, v in tensors.items()}, broken / "model.safetensors")
    with pytest.raises(BaseModelError, match=r"lack \d+ of the encoder's tensors"):
        fetch_base_model(str(broken)).classifier(num_labels=3)


SHIPPED = ROOT / "models" / "mini-phobert"


def test_the_shipped_encoder_is_a_small_phobert_base_model():
    """models/mini-phobert: PhoBERT's tokenizer files, a card, weights within 40 MB, and plain
    AutoModelForMaskedLM fills a mask with a Vietnamese word."""
    for name in ("vocab.txt", "bpe.codes"):
        assert (SHIPPED / name).read_bytes() == (PHOBERT_TOKENIZER_DIR / name).read_bytes()
    assert (SHIPPED / "model.safetensors").stat().st_size <= 40_000_000
    card = (SHIPPED / "README.md").read_text("utf-8")
    assert "news-2025-2026-leads" in card and "viwiki-2017" in card and "CC BY-SA" in card
    model = AutoModelForMaskedLM.from_pretrained(SHIPPED).float()
    tokenizer = AutoTokenizer.from_pretrained(SHIPPED)
    batch = tokenizer(["Thủ_đô của Việt_Nam là <mask> ."], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[0, batch["input_ids"][0].tolist().index(MASK)]
    assert tokenizer.convert_ids_to_tokens(int(logits.argmax())) not in tokenizer.all_special_tokens


@pytest.mark.slow
def test_the_quick_start_config_fine_tunes_the_shipped_encoder(tmp_path, monkeypatch):
    """configs/mini-phobert.yaml as the README's quick start runs it (10 steps), then predict."""
    monkeypatch.chdir(ROOT)  # the config's relative paths, as in the quick start
    out = tmp_path / "run"
    steps = ("training.max_steps=10", "training.eval_steps=10", "training.early_stopping_patience=null")
    ran = run_cli("train", "--config", ROOT / "configs" / "mini-phobert.yaml", f"output.dir={out}", *steps)
    assert ran.code == 0, ran.err
    assert json.loads((out / "vitopic.json").read_text())["base_model"] == "models/mini-phobert"
    predicted = run_cli("predict", "--model", out, "--input", DATA / "showcase.jsonl", "--quiet")
    assert predicted.code == 0, predicted.err
    assert len(predicted.out.splitlines()) == len((DATA / "showcase.jsonl").read_text("utf-8").splitlines())
