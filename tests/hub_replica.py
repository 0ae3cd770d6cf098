"""Replicas of the Hub's `vinai/phobert-*` repositories, in huggingface_hub's real cache layout.

Each replica's `main` holds, file for file, what the real repo's `main` holds (see
shared/notes/platform.md): `config.json` with the real fields (tiny sizes), `pytorch_model.bin`
(a pickle, as torch.save writes it), TF/Flax weight files, `vocab.txt`, `bpe.codes`, a valid
`tokenizer.json`, the remote-code files and `README.md`; no `tokenizer_config.json`, no safetensors.
A conversion revision (`refs/pr/N`, as the Hub's conversion bot opens) adds `model.safetensors`.
The remote-code files write a marker file if anything ever imports them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save as save_safetensors
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import RobertaConfig, RobertaForMaskedLM

from vitopic.tokenizer import PHOBERT_TOKENIZER_DIR

REMOTE_CODE_MARKER = "REMOTE_CODE_RAN"
PICKLE_MARKER = "PICKLE_CODE_RAN"

# Per repo: config.json fields beyond the shared ones, the tiny shape, the conversion PR, whether
# torch.save wrote the legacy (pre-1.6, non-zip) format, and the extra files on main.
V1_EXTRA_FILES = (  # phobert-base and -large (2020) also hold TF, Flax and tokenizer code
    "tf_model.h5",
    "flax_model.msgpack",
    "tokenization_phobert.py",
    "tokenization_phobert_fast.py",
    "__init__.py",
)
REPOS = {
    "vinai/phobert-base": dict(
        extra={"gradient_checkpointing": False},
        layers=1,
        pr="refs/pr/3",
        legacy=True,
        files=V1_EXTRA_FILES,
    ),
    "vinai/phobert-base-v2": dict(
        extra={
            "classifier_dropout": None,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
            "transformers_version": "4.26.1",
            "use_cache": True,
        },
        layers=1,
        pr="refs/pr/1",
        legacy=False,
        files=(),
    ),
    "vinai/phobert-large": dict(
        extra={"gradient_checkpointing": False},
        layers=2,
        pr="refs/pr/2",
        legacy=True,
        files=V1_EXTRA_FILES,
    ),
}


def phobert_config(repo_id: str, vocab_size: int) -> dict:
    """The real config.json's fields (architectures, ids, 258 positions, tokenizer_class), tiny sizes."""
    spec = REPOS[repo_id]
    return {
        "architectures": ["RobertaForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 258,
        "model_type": "roberta",
        "num_attention_heads": 2,
        "num_hidden_layers": spec["layers"],
        "pad_token_id": 1,
        "tokenizer_class": "PhobertTokenizer",
        "type_vocab_size": 1,
        "vocab_size": vocab_size,
        **spec["extra"],
    }


class _RunsCode:
    """Unpickling this creates a marker file: what a malicious pytorch_model.bin would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _tokenizer_json(vocab: list[str]) -> bytes:
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    ids = {tok: i for i, tok in enumerate([*specials, *vocab, "<mask>"])}
    tok = Tokenizer(models.WordLevel(ids, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens([*specials, "<mask>"])
    return tok.to_str().encode()


def phobert_files(repo_id: str, marker_dir: Path, evil_pickle: bool = False) -> dict[str, bytes]:
    """The files of the replica's `main`, by name, with PhoBERT's real vocab.txt and bpe.codes."""
    spec = REPOS[repo_id]
    vocab_txt = (PHOBERT_TOKENIZER_DIR / "vocab.txt").read_bytes()
    vocab = [line.split(" ")[0] for line in vocab_txt.decode().splitlines()]
    config = phobert_config(repo_id, vocab_size=len(vocab) + 5)
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig(**config))
    state = model.state_dict()
    payload = {"state": state, "run": _RunsCode(marker_dir / PICKLE_MARKER)} if evil_pickle else state
    weights = io.BytesIO()
    torch.save(payload, weights, _use_new_zipfile_serialization=not spec["legacy"])
    code = (
        f"open({str(marker_dir / REMOTE_CODE_MARKER)!r}, 'w').write('imported')\n"
        "raise ImportError('remote code must never be imported')\n"
    ).encode()
    files = {
        "config.json": json.dumps(config, indent=2, sort_keys=True).encode() + b"\n",
        "pytorch_model.bin": weights.getvalue(),
        "vocab.txt": vocab_txt,
        "bpe.codes": (PHOBERT_TOKENIZER_DIR / "bpe.codes").read_bytes(),
        "tokenizer.json": _tokenizer_json(vocab),
        "README.md": f"# {repo_id}\n\nPre-trained PhoBERT models (replica for tests).\n".encode(),
    }
    for name in spec["files"]:
        if name.endswith(".py"):
            files[name] = code
        elif name.endswith(".h5"):
            files[name] = b"\x89HDF\r\n\x1a\n" + bytes(64)  # HDF5 signature; never read
        else:
            files[name] = b"\x81\xa0"  # an empty msgpack map; never read
    files["_safetensors"] = save_safetensors(
        {k: v.clone().contiguous() for k, v in state.items() if not k.startswith("lm_head.decoder")}
    )
    return files


def place_snapshot(cache: Path, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
    """Store `files` as one commit of `repo_id` in huggingface_hub's cache layout; `revision`
    (a branch or `refs/pr/N`) points at it. Returns the commit hash."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(
        repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode()
    ).hexdigest()
    ref = repo / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return commit


def build_phobert_replica(
    cache: Path, repo_id: str, marker_dir: Path, evil_pickle: bool = False
) -> dict[str, str]:
    """`main` as the real repo has it, plus its conversion revision with model.safetensors."""
    files = phobert_files(repo_id, marker_dir, evil_pickle)
    converted = files.pop("_safetensors")
    return {
        "main": place_snapshot(cache, repo_id, files),
        REPOS[repo_id]["pr"]: place_snapshot(
            cache, repo_id, {**files, "model.safetensors": converted}, REPOS[repo_id]["pr"]
        ),
    }
