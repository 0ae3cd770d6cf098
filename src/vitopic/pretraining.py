"""Masked-LM pretraining of a PhoBERT-shaped RoBERTa with PhoBERT's tokenizer (a nanoGPT-style loop).

Dynamic masking with RoBERTa's 80/10/10 rule; the LM head projects only the masked positions
onto the 64,001-token vocabulary (half the step's time otherwise). Every step's randomness
(batch, masks, dropout) is derived from (seed, step), so a resumed run continues exactly as an
unbroken one would. The output is a base model in PhoBERT's layout: `config.json`
(`tokenizer_class: PhobertTokenizer`), `model.safetensors`, `vocab.txt`, `bpe.codes`, a card.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from transformers import RobertaConfig, RobertaForMaskedLM

from vitopic.config import PretrainConfig, save_config
from vitopic.errors import VitopicError
from vitopic.files import write_json, write_text
from vitopic.pretrain_data import Prepared, pack, prepare_source, say, sentences, sequence
from vitopic.tokenizer import PHOBERT_TOKENIZER_DIR, phobert_tokenizer

PAD, MASK = 1, 64000
FIRST_WORD_ID = 4  # ids 0-3 are <s>, <pad>, </s>, <unk>
STATE_DIR = "state"  # the resumable state: weights, optimizer, progress
LICENSE_FILE = "LICENSE-VinAI-PhoBERT"


class PretrainError(VitopicError, RuntimeError):
    """Pretraining cannot start or continue; the message says why."""


@dataclass
class Source:
    """One text source, prepared: its train sequences and a fixed held-out sample."""

    name: str
    train: Prepared
    heldout: Prepared
    train_spans: np.ndarray
    heldout_spans: np.ndarray


def build_mlm(cfg: PretrainConfig) -> RobertaForMaskedLM:
    """A PhoBERT-shaped RoBERTa (PhoBERT's vocabulary, 258 positions, pad id 1) for masked LM."""
    m = cfg.model
    config = RobertaConfig(
        vocab_size=MASK + 1,
        hidden_size=m.hidden_size,
        num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads,
        intermediate_size=m.intermediate_size,
        hidden_dropout_prob=m.dropout,
        attention_probs_dropout_prob=m.dropout,
        max_position_embeddings=258,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=PAD,
        bos_token_id=0,
        eos_token_id=2,
        tokenizer_class="PhobertTokenizer",
        position_embedding_type="absolute",
    )
    torch.manual_seed(cfg.training.seed)
    return RobertaForMaskedLM(config)


class _Sentences:
    """Every train sentence as a list of id strings, re-iterable (what gensim's Word2Vec reads)."""

    def __init__(self, sources: list[Source]):
        self.sources = sources

    def __iter__(self):
        for source in self.sources:
            for ids in sentences(source.train):
                yield [str(i) for i in ids.tolist()]


def word2vec_embeddings(sources: list[Source], cfg: PretrainConfig, log=say) -> np.ndarray:
    """A (64,001 x hidden) embedding matrix from skip-gram vectors of PhoBERT's pieces over all
    train text, scaled to RoBERTa's initial spread (std 0.02); pieces never seen stay random.
    Cached beside the prepared text."""
    dim, seed = cfg.model.hidden_size, cfg.training.seed
    key = (
        "|".join(f"{s.name}:{s.train.tokens}" for s in sources) + f"|{dim}|{seed}|{cfg.model.word2vec_epochs}"
    )
    cached = Path(cfg.data.cache_dir) / f"word2vec-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npy"
    if cached.is_file():
        return np.load(cached)
    try:
        from gensim.models import Word2Vec
    except ImportError as err:
        raise PretrainError(
            "model.embedding_init=word2vec needs gensim: pip install 'vitopic[pretrain]'"
        ) from err
    start = time.monotonic()
    log(f"pretrain: learning {dim}-dimensional word2vec vectors of PhoBERT's pieces (once)")
    w2v = Word2Vec(
        _Sentences(sources),
        vector_size=dim,
        window=5,
        min_count=3,
        sg=1,
        negative=5,
        workers=max(1, cfg.training.threads or os.cpu_count() or 1),
        epochs=cfg.model.word2vec_epochs,
        seed=seed,
    )
    matrix = np.random.default_rng(seed).normal(0, 0.02, (MASK + 1, dim)).astype(np.float32)
    vectors = w2v.wv.vectors
    rows = np.array([int(token) for token in w2v.wv.index_to_key])
    matrix[rows] = (vectors - vectors.mean(0)) / vectors.std() * 0.02
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached, matrix)
    log(f"pretrain: {len(rows):,} piece vectors in {(time.monotonic() - start) / 60:.1f} min")
    return matrix


def mask_tokens(
    ids: torch.Tensor, special: torch.Tensor, prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RoBERTa's dynamic masking: `prob` of the non-special positions are chosen; of those 80 %
    become `<mask>`, 10 % a random word piece, 10 % stay. Returns (inputs, chosen mask, targets)."""
    chosen = (torch.rand(ids.shape, generator=generator) < prob) & ~special
    if not chosen.any():  # at least one target per batch
        candidates = (~special).nonzero()
        chosen[tuple(candidates[torch.randint(len(candidates), (1,), generator=generator)][0])] = True
    inputs = ids.clone()
    roll = torch.rand(ids.shape, generator=generator)
    inputs[chosen & (roll < 0.8)] = MASK
    randomised = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[randomised] = torch.randint(FIRST_WORD_ID, MASK, (int(randomised.sum()),), generator=generator)
    return inputs, chosen, ids[chosen]


def batch_of(
    source: Source, spans: np.ndarray, rows: np.ndarray, seq_length: int
) -> tuple[torch.Tensor, ...]:
    """(input ids with <s> ... </s> and padding, attention mask, special-token mask)."""
    prepared = source.train if spans is source.train_spans else source.heldout
    seqs = [sequence(prepared, int(a), int(b), seq_length - 2) for a, b in spans[rows]]
    width = max(len(s) for s in seqs) + 2
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s) + 2] = torch.from_numpy(np.concatenate([[0], s, [2]]))
    attention = ids != PAD
    special = (ids == 0) | (ids == 2) | ~attention
    return ids, attention.long(), special


def mlm_loss(model: RobertaForMaskedLM, inputs, attention, chosen, targets) -> torch.Tensor:
    """Cross-entropy on the masked positions only: the LM head sees just those hidden states."""
    hidden = model.roberta(input_ids=inputs, attention_mask=attention).last_hidden_state
    # The vocabulary projection runs in fp32: its bf16 weight-gradient GEMM takes CPUs' slow path
    # (measured: 98 s of a 104 s step, against 1.2 s for the whole fp32 backward).
    with torch.autocast(hidden.device.type, enabled=False):
        logits = model.lm_head(hidden[chosen].float())
    return torch.nn.functional.cross_entropy(logits, targets)


def load_sources(cfg: PretrainConfig, log=say) -> list[Source]:
    tokenizer = phobert_tokenizer()
    sources = []
    for path in map(Path, cfg.data.sources):
        if not path.is_file():
            raise PretrainError(f"data.sources: {path} not found")
        prepared = prepare_source(
            path, Path(cfg.data.cache_dir), cfg.data.segmenter, tokenizer, cfg.data.holdout_every, log
        )
        train_spans = pack(prepared["train"], cfg.training.seq_length - 2)
        heldout_spans = pack(prepared["heldout"], cfg.training.seq_length - 2)[: cfg.training.eval_sequences]
        if not len(train_spans):
            raise PretrainError(f"data.sources: {path} holds no text")
        sources.append(
            Source(
                path.name.split(".")[0], prepared["train"], prepared["heldout"], train_spans, heldout_spans
            )
        )
    return sources


def _autocast(cfg: PretrainConfig, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if cfg.training.bf16 else nullcontext()


@torch.no_grad()
def heldout_loss(model, sources: list[Source], cfg: PretrainConfig, device: torch.device) -> dict[str, float]:
    """Masked-LM loss per source on its held-out sequences, with masks fixed by the seed."""
    model.eval()
    losses = {}
    for source in sources:
        if not len(source.heldout_spans):
            continue
        generator = torch.Generator().manual_seed(cfg.training.seed)
        total, count = 0.0, 0
        for start in range(0, len(source.heldout_spans), cfg.training.batch_size):
            rows = np.arange(start, min(start + cfg.training.batch_size, len(source.heldout_spans)))
            ids, attention, special = batch_of(source, source.heldout_spans, rows, cfg.training.seq_length)
            inputs, chosen, targets = mask_tokens(ids, special, cfg.training.mask_prob, generator)
            with _autocast(cfg, device):
                loss = mlm_loss(
                    model, inputs.to(device), attention.to(device), chosen.to(device), targets.to(device)
                )
            total += float(loss) * len(targets)
            count += len(targets)
        losses[source.name] = total / count
    model.train()
    return losses


def learning_rate(cfg: PretrainConfig, step: int) -> float:
    """Linear warm-up, then linear decay to a tenth of the peak."""
    t = cfg.training
    if step < t.warmup_steps:
        return t.learning_rate * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
    return t.learning_rate * (1 - 0.9 * min(1.0, progress))


def _optimizer(model, cfg: PretrainConfig) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.training.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.training.learning_rate, betas=(0.9, 0.98), eps=1e-6)


def _save_state(out: Path, model, optimizer, progress: dict) -> None:
    """Weights, optimizer and progress into `state/`, replacing the previous state atomically."""
    tmp = out / f"{STATE_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")  # tensors and plain containers only
    (tmp / "progress.json").write_text(json.dumps(progress, indent=1))
    old = out / f"{STATE_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if (out / STATE_DIR).exists():
        os.replace(out / STATE_DIR, old)
    os.replace(tmp, out / STATE_DIR)
    shutil.rmtree(old, ignore_errors=True)


def _load_state(out: Path, model, optimizer) -> dict:
    state = out / STATE_DIR
    if not (state / "progress.json").is_file():
        raise PretrainError(f"--resume: no saved state in {state}")
    load_model(model, str(state / "model.safetensors"))
    optimizer.load_state_dict(torch.load(state / "optimizer.pt", weights_only=True))
    return json.loads((state / "progress.json").read_text())


def pretrain(cfg: PretrainConfig, resume: bool = False, log=say) -> dict:
    """Run (or resume) masked-LM pretraining per `cfg`; write the base model into `output.dir`."""
    t = cfg.training
    out = Path(cfg.output.dir)
    if not resume and (out / STATE_DIR).exists():
        raise PretrainError(
            f"{out} holds a pretraining run; continue it with --resume or choose another output.dir"
        )
    device = torch.device(
        t.device if t.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    )
    if t.threads:
        torch.set_num_threads(t.threads)
    sources = load_sources(cfg, log)
    model = build_mlm(cfg)
    if cfg.model.embedding_init == "word2vec" and not resume:
        with torch.no_grad():
            model.roberta.embeddings.word_embeddings.weight.copy_(
                torch.from_numpy(word2vec_embeddings(sources, cfg, log))
            )
    model.to(device)
    optimizer = _optimizer(model, cfg)
    progress = {"step": 0, "tokens": 0, "seconds": 0.0, "heldout": []}
    if resume:
        progress = _load_state(out, model, optimizer)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "pretrain-config.yaml")
    weights = np.array([len(s.train_spans) for s in sources], dtype=float)
    weights /= weights.sum()
    parameters = sum(p.numel() for p in model.parameters())
    log(
        f"pretrain: {parameters / 1e6:.1f} M parameters, {len(sources)} sources "
        f"({', '.join(f'{s.name} {s.train.tokens / 1e6:.1f} M tokens' for s in sources)}), "
        f"{t.max_steps} steps of {t.batch_size} x {t.seq_length}, {device.type}"
        f"{' bf16' if t.bf16 else ''}, from step {progress['step']}"
    )
    stop = []
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
    model.train()
    started, last_log, last_save = time.monotonic(), time.monotonic(), time.monotonic()
    seconds_before, first_step, running = progress["seconds"], progress["step"], []
    try:
        while progress["step"] < t.max_steps and not stop:
            step = progress["step"]
            rng = np.random.default_rng([t.seed, step])
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            torch.manual_seed(int(rng.integers(2**62)))  # dropout
            picks = rng.choice(len(sources), size=t.batch_size, p=weights)
            batches = []
            for index in np.unique(picks):
                source = sources[index]
                rows = rng.integers(len(source.train_spans), size=int((picks == index).sum()))
                batches.append(batch_of(source, source.train_spans, rows, t.seq_length))
            ids, attention, special = _stack(batches)
            inputs, chosen, targets = mask_tokens(ids, special, t.mask_prob, generator)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step)
            with _autocast(cfg, device):
                loss = mlm_loss(
                    model, inputs.to(device), attention.to(device), chosen.to(device), targets.to(device)
                )
            loss.backward()
            value = loss.item()
            if not math.isfinite(value):
                raise PretrainError(f"step {step}: loss is {value}; lower training.learning_rate")
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            running.append(value)
            progress["step"] = step + 1
            progress["tokens"] += int(attention.sum())
            now = time.monotonic()
            progress["seconds"] = seconds_before + now - started
            if now - last_log >= t.log_seconds or progress["step"] == t.max_steps:
                rate = (progress["step"] - first_step) / max(now - started, 1e-9)
                left = (t.max_steps - progress["step"]) / max(rate, 1e-9)
                log(
                    f"pretrain: step {progress['step']}/{t.max_steps}, loss {np.mean(running):.3f}, "
                    f"{progress['tokens'] / max(progress['seconds'], 1e-9):,.0f} tokens/s, "
                    f"{progress['tokens'] / 1e6:.2f} M tokens, {progress['seconds'] / 60:.1f} min, "
                    f"about {left / 60:.0f} min left"
                )
                running, last_log = [], now
            if t.eval_steps and progress["step"] % t.eval_steps == 0:
                _record_heldout(model, sources, cfg, device, progress, log)
            if now - last_save >= t.checkpoint_minutes * 60:
                _save_state(out, model, optimizer, progress)
                last_save = time.monotonic()
    finally:
        signal.signal(signal.SIGTERM, previous)
    _save_state(out, model, optimizer, progress)
    if stop:
        log(f"pretrain: stopped by {stop[0]} at step {progress['step']}; continue with --resume")
        return progress
    if not progress["heldout"] or progress["heldout"][-1]["step"] != progress["step"]:
        _record_heldout(model, sources, cfg, device, progress, log)
    save_base_model(model, cfg, sources, progress, out)
    log(f"pretrain: base model written to {out}")
    return progress


def _stack(batches: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
    width = max(b[0].shape[1] for b in batches)

    def pad(x: torch.Tensor, value) -> torch.Tensor:
        return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)

    return (
        torch.cat([pad(b[0], PAD) for b in batches]),
        torch.cat([pad(b[1], 0) for b in batches]),
        torch.cat([pad(b[2], True) for b in batches]),
    )


def _record_heldout(model, sources, cfg, device, progress: dict, log) -> None:
    losses = heldout_loss(model, sources, cfg, device)
    progress["heldout"].append({"step": progress["step"], "tokens": progress["tokens"], "loss": losses})
    log(
        f"pretrain: held-out at step {progress['step']}: "
        + ", ".join(
            f"{name} loss {loss:.3f} (perplexity {math.exp(loss):.1f})" for name, loss in losses.items()
        )
    )


def save_base_model(model, cfg: PretrainConfig, sources: list[Source], progress: dict, out: Path) -> None:
    """The encoder in PhoBERT's layout, weights stored as `output.dtype`, plus its card."""
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.output.dtype]
    model.to("cpu").to(dtype).save_pretrained(out)
    model.to(torch.float32)
    for name in ("vocab.txt", "bpe.codes", LICENSE_FILE):
        shutil.copyfile(PHOBERT_TOKENIZER_DIR / name, out / name)
    write_json(out / "pretrain_metrics.json", progress)
    write_text(out / "README.md", render_card(cfg, sources, progress, model))


def render_card(cfg: PretrainConfig, sources: list[Source], progress: dict, model) -> str:
    m = cfg.model
    shape = f"{m.num_hidden_layers} × {m.hidden_size} ({m.num_attention_heads}, {m.intermediate_size})"
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    final = progress["heldout"][-1]["loss"] if progress["heldout"] else {}
    rows = "\n".join(
        f"| `{s.name}` | {s.train.tokens:,} | {s.heldout.tokens:,} | "
        + (f"{final[s.name]:.3f} | {math.exp(final[s.name]):.1f} |" if s.name in final else "– | – |")
        for s in sources
    )
    return f"""---
language: vi
license: mit
library_name: transformers
pipeline_tag: fill-mask
tags: [phobert, roberta, vitopic]
---

# A mini-PhoBERT, pretrained by vitopic

A RoBERTa encoder with PhoBERT's tokenizer (VinAI's `vocab.txt` and `bpe.codes`, MIT, in
`{LICENSE_FILE}`), so its token ids mean what they mean in `vinai/phobert-*`. Input is
word-segmented Vietnamese (`{cfg.data.segmenter}`, as vitopic prepares it). Built with
`vitopic pretrain` (masked LM, RoBERTa's dynamic 80/10/10 masking) to be fine-tuned through
`model.name_or_path`, as `vinai/phobert-base` is; it is far smaller and has read far less text.

| shape | value |
|---|---|
| layers × width (heads, feed-forward) | {shape} |
| parameters | {parameters:.1f} M (weights stored as {cfg.output.dtype}) |
| steps × batch × sequence | {progress["step"]:,} × {cfg.training.batch_size} × {cfg.training.seq_length} |
| tokens seen | {progress["tokens"]:,} |
| training time | {progress["seconds"] / 3600:.2f} h |

## Text it read, and held-out masked-LM loss

| source | train tokens | held-out tokens | held-out loss | perplexity |
|---|---|---|---|---|
{rows}

{cfg.data.description.strip()}

Held-out: every {cfg.data.holdout_every}th document of each source, never trained on (first
{cfg.training.eval_sequences} packed sequences, masks fixed by the seed).
"""
