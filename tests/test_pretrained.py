"""The phobert-* configs' path: start from a pretrained PhoBERT-format checkpoint fetched by Hub id."""

import json
import os
import subprocess
import sys

import yaml
from conftest import DATA, ROOT, place_in_hub_cache
from transformers import RobertaConfig, RobertaForMaskedLM

from vitopic.text import java_available


def _fake_phobert(trained_dir, target):
    """A PhoBERT-shaped masked-LM checkpoint laid out like vinai/phobert-base on the Hub:
    config.json (with tokenizer_class), weights, vocab.txt and bpe.codes, no tokenizer_config.json."""
    vocab = json.loads((trained_dir / "config.json").read_text())["vocab_size"]
    config = RobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=258, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, tokenizer_class="PhobertTokenizer")
    RobertaForMaskedLM(config).save_pretrained(target)
    for name in ("vocab.txt", "bpe.codes"):
        (target / name).write_bytes((trained_dir / name).read_bytes())
    assert not (target / "tokenizer_config.json").exists()
    return target


def test_phobert_base_config_fine_tunes_from_a_hub_id(trained_dir, tmp_path):
    place_in_hub_cache(_fake_phobert(trained_dir, tmp_path / "fake"), tmp_path / "hub",
                       "vinai/phobert-base")
    out = tmp_path / "run"
    segmenter = "rdrsegmenter" if java_available() else "pyvi"
    cmd = [sys.executable, "training/train.py", "--config", "configs/phobert-base.yaml",
           f"data.dir={DATA}", f"output.dir={out}", "training.max_steps=12",
           "training.eval_steps=6", "training.batch_size=8", f"text.segmenter={segmenter}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    config = json.loads((out / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"]["2"] == "nato" and config["hidden_size"] == 32
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 256
    meta = json.loads((out / "vitopic.json").read_text())
    assert meta["base_model"] == "vinai/phobert-base" and meta["segmenter"] == segmenter
    header = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    assert header["base_model"] == "vinai/phobert-base" and header["license"] == "mit"
