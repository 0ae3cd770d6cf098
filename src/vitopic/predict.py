"""The predict API: `TopicClassifier.from_pretrained(...).predict(texts)`."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args, overload

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from vitopic.checkpoint import CheckpointError, Metadata, load_model, open_checkpoint, resolve
from vitopic.export import INT8_FILE, ONNX_FILE
from vitopic.modeling import decide, label_scores, scores_from_logits
from vitopic.text import prepare, split_sentences

Backend = Literal["torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
Runner = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Piece:
    """One sentence or window of a long input, with its own scores."""

    text: str
    scores: dict[str, float]


@dataclass(frozen=True)
class Prediction:
    """The topics of one input.

    `labels` are those at or above their threshold; `scores` holds every label's probability.
    For inputs longer than the model's limit, `pieces` holds the per-sentence (or per-window)
    detail and `scores` is the maximum over the pieces. `empty` is True when the input held no
    text (empty, whitespace or markup only): then there are no labels and every score is 0.
    """

    labels: list[str]
    scores: dict[str, float]
    pieces: list[Piece] = field(default_factory=list)
    empty: bool = False


class TopicClassifier:
    """A trained vitopic checkpoint, ready to label raw or word-segmented Vietnamese."""

    def __init__(self, runner: Runner, tokenizer, metadata: Metadata,
                 segmenter: str | None = None):
        self.metadata = metadata
        self.labels = list(metadata.labels)
        self.tokenizer = tokenizer
        self.max_length = metadata.max_length
        self.segmenter = metadata.segmenter
        if segmenter is not None and segmenter != metadata.segmenter:
            warnings.warn(
                f"segmenter {segmenter!r} overrides {metadata.segmenter!r}, the one this model "
                "was trained with; predictions may degrade", UserWarning, stacklevel=3,
            )
            self.segmenter = segmenter
        self._runner = runner

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, revision: str | None = None,
        device: str | torch.device | None = None, segmenter: str | None = None,
        backend: Backend = "torch",
    ) -> TopicClassifier:
        """Load a local checkpoint dir or a Hub id (`org/name`). Safetensors only; no remote code.

        `backend`: "torch" (fp32), "torch-bf16" (bf16 autocast), "torch-int8" (dynamic int8
        linear layers), "onnx" or "onnx-int8" (ONNX Runtime; run `vitopic export` first).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        directory = resolve(name_or_path, revision)
        metadata = open_checkpoint(directory)
        tokenizer = AutoTokenizer.from_pretrained(
            directory, model_max_length=metadata.max_length, trust_remote_code=False
        )
        if backend.startswith("onnx"):
            runner: Runner = OnnxRunner(directory / (INT8_FILE if backend == "onnx-int8"
                                                     else ONNX_FILE))
        else:
            runner = TorchRunner(load_model(directory), device, backend)
        return cls(runner, tokenizer, metadata, segmenter=segmenter)

    @property
    def thresholds(self) -> np.ndarray:
        return np.asarray(self.metadata.thresholds, dtype=np.float64)

    @overload
    def predict(self, texts: str, batch_size: int = ..., threshold: float | None = ...,
                progress: bool = ...) -> Prediction: ...
    @overload
    def predict(self, texts: Sequence[str], batch_size: int = ...,
                threshold: float | None = ..., progress: bool = ...) -> list[Prediction]: ...

    def predict(self, texts, batch_size=32, threshold=None, progress=False):
        """Label one text (returns a Prediction) or a list of texts (returns a list, same order).

        `threshold` overrides the tuned per-label thresholds with one value for every label.
        Raises TypeError naming the index of any non-`str` input.
        """
        single = isinstance(texts, str)
        items = _validate_inputs(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if threshold is not None and self.metadata.mode != "multi_label":
            raise ValueError("threshold applies to multi_label models; a single_label model "
                             "picks its most probable class")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        owners, pieces, texts_of = self._pieces(items)
        scores = self._score(pieces, batch_size, progress)
        cuts = self.thresholds if threshold is None else np.full(len(self.labels), threshold)
        mode = self.metadata.mode
        decisions = decide(scores, mode, cuts) if len(pieces) else np.zeros((0, len(self.labels)))
        probs = label_scores(scores, mode) if len(pieces) else decisions
        results = []
        index = np.arange(len(items))  # pieces are in input order: each input owns a contiguous run
        for start, end in zip(np.searchsorted(owners, index),
                              np.searchsorted(owners, index, side="right"), strict=True):
            rows = np.arange(start, end)
            if not len(rows):
                results.append(Prediction([], dict.fromkeys(self.labels, 0.0), empty=True))
                continue
            doc = probs[rows].max(0)
            chosen = decisions[rows].any(0)
            detail = [Piece(texts_of[r], self._as_dict(probs[r])) for r in rows] if len(rows) > 1 \
                else []
            results.append(Prediction([lab for lab, on in zip(self.labels, chosen, strict=True)
                                       if on], self._as_dict(doc), detail))
        return results[0] if single else results

    def _as_dict(self, row: np.ndarray) -> dict[str, float]:
        return {label: float(p) for label, p in zip(self.labels, row, strict=True)}

    def _encode(self, texts: list[str]) -> list[list[int]]:
        prepared = prepare(texts, self.segmenter)
        if not prepared:
            return []
        return self.tokenizer(prepared, add_special_tokens=False, verbose=False)["input_ids"]

    def _pieces(self, items: list[str]) -> tuple[np.ndarray, list[list[int]], list[str]]:
        """Token-id pieces that fit the model, and the input each belongs to.

        An input over the limit is split into sentences; a sentence still over it into
        overlapping windows.
        """
        room = self.max_length - 2
        owners: list[int] = []
        pieces: list[list[int]] = []
        texts: list[str] = []
        for i, (text, ids) in enumerate(zip(items, self._encode(items), strict=True)):
            if not ids:
                continue
            if len(ids) <= room:
                owners.append(i)
                pieces.append(ids)
                texts.append(text)
                continue
            sentences = split_sentences(text)
            for sentence, sent_ids in zip(sentences, self._encode(sentences), strict=True):
                for window in _windows(sent_ids, room) if sent_ids else []:
                    owners.append(i)
                    pieces.append(window)
                    texts.append(sentence if len(window) == len(sent_ids)
                                 else self.tokenizer.decode(window))
        return np.asarray(owners, dtype=np.int64), pieces, texts

    def _score(self, pieces: list[list[int]], batch_size: int, progress: bool) -> np.ndarray:
        """Per-class probabilities for each piece: batches sorted by length, padded dynamically."""
        n_classes = len(self.labels) + (self.metadata.mode == "single_label")
        out = np.zeros((len(pieces), n_classes))
        order = np.argsort([len(p) for p in pieces], kind="stable")
        bos, eos, pad = (self.tokenizer.bos_token_id, self.tokenizer.eos_token_id,
                         self.tokenizer.pad_token_id)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="predict", disable=not progress, unit="batch"):
            batch = order[start:start + batch_size]
            width = max(len(pieces[k]) for k in batch) + 2
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, k in enumerate(batch):
                seq = [bos, *pieces[k], eos]
                ids[row, :len(seq)] = seq
                mask[row, :len(seq)] = 1
            out[batch] = scores_from_logits(self._runner(ids, mask), self.metadata.mode)
        return out


class TorchRunner:
    """Logits from the PyTorch model under `inference_mode` (fp32, bf16 autocast or int8)."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None, backend: str):
        self.device = torch.device(device or "cpu")
        model = model.to(self.device).eval()
        if backend == "torch-int8":
            if self.device.type != "cpu":
                raise ValueError("backend 'torch-int8' runs on the CPU only")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                           dtype=torch.qint8)
        self.model = model
        self.bf16 = backend == "torch-bf16"

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.bf16):
            logits = self.model(input_ids=torch.from_numpy(ids).to(self.device),
                                attention_mask=torch.from_numpy(mask).to(self.device)).logits
        return logits.float().cpu().numpy()


class OnnxRunner:
    """Logits from an ONNX Runtime session over an exported model."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise CheckpointError(f"{path}: not found; run `vitopic export --model "
                                  f"{path.parent} --onnx{' --int8' if path.name == INT8_FILE else ''}`")
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


def _validate_inputs(texts: object) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a str or a list of str, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return list(texts)


def _windows(ids: list[int], size: int) -> list[list[int]]:
    """Windows of at most `size` ids, overlapping by half, covering the whole sequence."""
    if len(ids) <= size:
        return [ids]
    stride = max(size // 2, 1)
    starts = [*list(range(0, len(ids) - size, stride)), len(ids) - size]
    return [ids[s:s + size] for s in starts]
