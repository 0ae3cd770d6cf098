"""The predict API: `TopicClassifier.from_pretrained(...).predict(texts)`."""

from __future__ import annotations

import importlib.util
import json
import logging
import numbers
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, overload

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, RobertaConfig
from transformers.models.roberta.modeling_roberta import RobertaClassificationHead

from vitopic.checkpoint import (
    CT2_DIR,
    EXPORT_SOURCE,
    INT8_FILE,
    ONNX_FILE,
    CheckpointError,
    Metadata,
    check_inside,
    load_model,
    load_tensors,
    open_checkpoint,
    weights_fingerprint,
)
from vitopic.errors import VitopicError, import_extra, one_line, shown
from vitopic.heads import Head
from vitopic.hub import resolve
from vitopic.options import BACKENDS, SPLITS, Backend, Split
from vitopic.quiet import no_progress_bars
from vitopic.text import check_unicode, prepare, split_sentences

logger = logging.getLogger("vitopic.predict")


@dataclass(frozen=True)
class Export:
    """A file or directory `vitopic export` writes into a checkpoint, and the engine that runs it."""

    name: str
    flag: str  # the `vitopic export` option that writes it ("" for the default)
    module: str


# The order in which backend="auto" looks for them on the CPU: fastest first, as measured on this
# project's CPU (benchmarks/inference.py compares them).
EXPORTS: dict[str, Export] = {
    "ct2-int8": Export(CT2_DIR, "--ct2", "ctranslate2"),
    "onnx-int8": Export(INT8_FILE, "--int8", "onnxruntime"),
    "onnx": Export(ONNX_FILE, "", "onnxruntime"),
}


class Runner(Protocol):
    """What scores token ids: logits from padded ids and their attention mask, on `device`."""

    device: torch.device
    backend: str

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray: ...


class DeviceError(VitopicError, ValueError):
    """The device asked for is not one vitopic can run on here; the message says why."""


class _Plain:
    """A result that turns into plain data."""

    def to_dict(self) -> dict:
        """Plain lists, dicts, floats and bools: what `json.dumps` accepts."""
        return asdict(self)


@dataclass(frozen=True)
class Piece(_Plain):
    """One sentence or window of a long input, with its own scores."""

    text: str
    scores: dict[str, float]


@dataclass(frozen=True)
class Prediction(_Plain):
    """The topics of one input.

    `labels` are those at or above their threshold; `scores` holds every label's probability
    (with `predict(top_k=K)`: the K highest, and `labels` only those of them).
    An input of several sentences is scored sentence by sentence (a sentence over the model's
    limit in overlapping windows): `pieces` holds that detail, `scores` is the maximum over the
    pieces and `labels` those any piece reached. `empty` is True when the input held no
    text (empty, whitespace or markup only): then there are no labels and every score is 0.
    """

    labels: list[str]
    scores: dict[str, float]
    pieces: list[Piece] = field(default_factory=list)
    empty: bool = False

    def to_row(self, pieces: bool = False) -> dict:
        """The fields every output adds for this prediction (`vitopic predict`'s files, the HTTP
        answer, Ray's columns): labels, scores and empty, with `pieces` the per-piece detail too;
        the numbers as they are here, unrounded, so that every output agrees with `predict`."""
        row = {"labels": list(self.labels), "scores": dict(self.scores), "empty": self.empty}
        if pieces:
            row["pieces"] = [p.to_dict() for p in self.pieces]
        return row


class TopicClassifier:
    """A trained vitopic checkpoint, ready to label raw or word-segmented Vietnamese."""

    def __init__(self, runner: Runner, tokenizer, metadata: Metadata, segmenter: str | None = None):
        self.metadata = metadata
        self.labels = list(metadata.labels)
        self.tokenizer = tokenizer
        self.max_length = metadata.max_length
        self.segmenter = metadata.segmenter
        if segmenter is not None and segmenter != metadata.segmenter:
            warnings.warn(
                f"segmenter {segmenter!r} overrides {metadata.segmenter!r}, the one this model "
                "was trained with; predictions may degrade",
                UserWarning,
                stacklevel=3,
            )
            self.segmenter = segmenter
        self._runner = runner

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        revision: str | None = None,
        device: str | torch.device | None = None,
        segmenter: str | None = None,
        backend: Backend = "auto",
    ) -> TopicClassifier:
        """Load a local checkpoint dir or a Hub id (`org/name`). Safetensors only; no remote code.

        `backend`: "auto" (default: see `resolve_backend`), "torch" (fp32), "torch-bf16" (bf16
        weights and activations), "onnx" or "onnx-int8" (ONNX Runtime; run `vitopic export
        [--int8]` first), "ct2-int8" (CTranslate2; run `vitopic export --ct2` first).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        device = resolve_device(device)  # before anything is downloaded or loaded
        if backend in EXPORTS and device.type != "cpu":
            raise DeviceError(
                f"backend {backend!r} runs on the CPU; give device 'cpu' or none, "
                "or backend 'torch' for a GPU"
            )
        directory = resolve(name_or_path, revision)
        metadata = open_checkpoint(directory)
        tokenizer = AutoTokenizer.from_pretrained(
            directory, model_max_length=metadata.max_length, trust_remote_code=False
        )
        resolved = resolve_backend(backend, directory, device)
        if resolved == "ct2-int8":
            runner: Runner = Ct2Runner(directory)
        elif resolved in EXPORTS:
            runner = OnnxRunner(directory, resolved)
        else:
            with no_progress_bars():  # transformers' "Loading weights" bar, on every load
                model = load_model(directory)
            runner = TorchRunner(model, device, resolved)
        logger.info(
            "%s: backend %s%s on %s", directory, resolved, " (auto)" if backend == "auto" else "", device
        )
        return cls(runner, tokenizer, metadata, segmenter=segmenter)

    @property
    def device(self) -> torch.device:
        """Where the model runs: a `torch.device` for every backend (the exported ones run on the CPU)."""
        return self._runner.device

    @property
    def backend(self) -> str:
        """The backend that runs the model: the one `backend="auto"` chose, or the one asked for."""
        return self._runner.backend

    @property
    def thresholds(self) -> np.ndarray:
        return np.asarray(self.metadata.thresholds, dtype=np.float64)

    @overload
    def predict(
        self,
        texts: str,
        batch_size: int = ...,
        threshold: float | None = ...,
        progress: bool = ...,
        split: Split = ...,
        top_k: int | None = ...,
    ) -> Prediction: ...
    @overload
    def predict(
        self,
        texts: Sequence[str],
        batch_size: int = ...,
        threshold: float | None = ...,
        progress: bool = ...,
        split: Split = ...,
        top_k: int | None = ...,
    ) -> list[Prediction]: ...

    def predict(self, texts, batch_size=32, threshold=None, progress=False, split="sentence", top_k=None):
        """Label one text (returns a Prediction) or a list of texts (returns a list, same order).

        `threshold` overrides the tuned per-label thresholds with one value for every label.
        `split="none"` scores each input as one piece (windows only past the length limit).
        `top_k=K` keeps only the K highest scores of each input and piece (highest first), and
        only the labels among them: every label given has its score.
        Raises TypeError naming the index of any non-`str` input, ValueError for invalid text.
        """
        single = isinstance(texts, str)
        items = _validate_inputs(texts)
        head = self.metadata.head
        _check_options(batch_size, threshold, split, top_k, head)
        owners, pieces, texts_of = self._pieces(items, split)
        scores = self._score(pieces, batch_size, progress)
        cuts = self.thresholds if threshold is None else np.full(len(self.labels), threshold)
        decisions = head.decide(scores, cuts) if len(pieces) else np.zeros((0, len(self.labels)))
        probs = head.label_scores(scores) if len(pieces) else decisions
        results = []
        index = np.arange(len(items))  # pieces are in input order: each input owns a contiguous run
        for start, end in zip(
            np.searchsorted(owners, index), np.searchsorted(owners, index, side="right"), strict=True
        ):
            rows = np.arange(start, end)
            if not len(rows):
                results.append(Prediction([], self._top(np.zeros(len(self.labels)), top_k), empty=True))
                continue
            doc = self._top(probs[rows].max(0), top_k)
            chosen = decisions[rows].any(0)
            detail = [Piece(texts_of[r], self._top(probs[r], top_k)) for r in rows] if len(rows) > 1 else []
            labels = [lab for lab, on in zip(self.labels, chosen, strict=True) if on and lab in doc]
            results.append(Prediction(labels, doc, detail))
        return results[0] if single else results

    __call__ = predict  # like `pipeline(...)(texts)` and SetFit's `model(texts)`

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 32, split: Split = "sentence"
    ) -> np.ndarray:
        """float32 (len(texts), len(labels)) array of each label's probability (`Prediction.scores`)."""
        predictions = self.predict(texts, batch_size=batch_size, split=split)
        if isinstance(predictions, Prediction):  # one text in, one row out
            predictions = [predictions]
        return np.array(
            [[p.scores[lab] for lab in self.labels] for p in predictions], dtype=np.float32
        ).reshape(len(predictions), len(self.labels))

    def _top(self, row: np.ndarray, top_k: int | None) -> dict[str, float]:
        """Each label's score in label order; with `top_k`, the K highest, highest first."""
        order = np.argsort(-row, kind="stable")[:top_k] if top_k else range(len(self.labels))
        return {self.labels[i]: float(row[i]) for i in order}

    def _encode(self, texts: list[str]) -> list[list[int]]:
        prepared = prepare(texts, self.segmenter)
        if not prepared:
            return []
        return self.tokenizer(prepared, add_special_tokens=False, verbose=False)["input_ids"]

    def _pieces(
        self, items: list[str], split: Split = "sentence"
    ) -> tuple[np.ndarray, list[list[int]], list[str]]:
        """Token-id pieces that fit the model, and the input each belongs to.

        Each input is split into sentences first (the unit the model learned from, and what
        keeps long inputs linear); a piece still over the limit becomes overlapping windows.
        """
        room = self.max_length - 2
        units = [
            (i, unit)
            for i, text in enumerate(items)
            for unit in (split_sentences(text) if split == "sentence" else [text])
        ]
        owners: list[int] = []
        pieces: list[list[int]] = []
        texts: list[str] = []
        for (i, unit), ids in zip(units, self._encode([u for _, u in units]), strict=True):
            for window in _windows(ids, room) if ids else []:
                owners.append(i)
                pieces.append(window)
                texts.append(unit if len(window) == len(ids) else self.tokenizer.decode(window))
        return np.asarray(owners, dtype=np.int64), pieces, texts

    def _score(self, pieces: list[list[int]], batch_size: int, progress: bool) -> np.ndarray:
        """Per-class probabilities for each piece: batches sorted by length, padded dynamically."""
        head = self.metadata.head
        out = np.zeros((len(pieces), len(head.class_names(self.labels))))
        order = np.argsort([len(p) for p in pieces], kind="stable")
        bos, eos, pad = (
            self.tokenizer.bos_token_id,
            self.tokenizer.eos_token_id,
            self.tokenizer.pad_token_id,
        )
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="predict", disable=not progress, unit="batch"):
            batch = order[start : start + batch_size]
            width = max(len(pieces[k]) for k in batch) + 2
            ids = np.full((len(batch), width), pad, dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, k in enumerate(batch):
                seq = [bos, *pieces[k], eos]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            out[batch] = head.probabilities(self._runner(ids, mask))
        return out


def _one_thread_after_fork() -> None:
    """A forked child of a process that ran torch ops would hang in OpenMP's thread pool (libgomp
    does not survive fork); run the child's torch single-threaded instead. Spawned processes
    (multiprocessing "spawn", uvicorn workers, Ray) are unaffected and keep every thread."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_thread_after_fork)


class TorchRunner:
    """Logits from the PyTorch model under `inference_mode`, in fp32 or with bf16 weights."""

    def __init__(self, model: torch.nn.Module, device: torch.device, backend: str):
        self.device, self.backend = device, backend
        # bf16 weights rather than autocast, which re-casts every weight on every call.
        dtype = torch.bfloat16 if backend == "torch-bf16" else torch.float32
        self.model = model.to(self.device, dtype=dtype).eval()

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.model(
                input_ids=torch.from_numpy(ids).to(self.device),
                attention_mask=torch.from_numpy(mask).to(self.device),
            ).logits
        return logits.float().cpu().numpy()


def resolve_device(device: str | torch.device | None) -> torch.device:
    """A torch device that exists here ("cpu" by default), or a DeviceError saying why not."""
    try:
        resolved = torch.device(device or "cpu")
    except (RuntimeError, TypeError) as err:
        raise DeviceError(
            f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda', 'cuda:1', 'mps')"
        ) from err
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if not count or (resolved.index is not None and resolved.index >= count):
            raise DeviceError(f"device {device!r} is not available: this machine has {count} CUDA device(s)")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {device!r} is not available here")
    elif resolved.type != "cpu":
        raise DeviceError(f"device {device!r}: vitopic runs on 'cpu', 'cuda' or 'mps'")
    return resolved


def resolve_backend(backend: Backend, directory: Path, device: torch.device) -> str:
    """`backend`, or for "auto": "torch" on a GPU; on the CPU the first of `EXPORTS` (ct2-int8,
    onnx-int8, onnx) present in `directory` whose engine is installed, else "torch"."""
    if backend != "auto":
        return backend
    if device.type != "cpu":
        return "torch"
    return next(
        (
            name
            for name, export in EXPORTS.items()
            if (directory / export.name).exists() and importlib.util.find_spec(export.module)
        ),
        "torch",
    )


class _ExportRunner:
    """What the runners over an export share: the CPU, the export's path in the checkpoint
    `directory`, and its errors: one line naming the file and the command that rebuilds it."""

    device = torch.device("cpu")

    def __init__(self, directory: Path, backend: str):
        self.backend = backend
        export = EXPORTS[backend]
        self.path = directory / export.name
        self._rebuild = f"run `vitopic export --model {directory}{f' {export.flag}' if export.flag else ''}`"
        if not self.path.exists():
            raise self.error("not found")

    def error(self, problem: str, path: Path | None = None) -> CheckpointError:
        """A CheckpointError: `path` (default: the export), the problem, and how to rebuild it."""
        return CheckpointError(f"{path or self.path}: {problem}; {self._rebuild}")


class OnnxRunner(_ExportRunner):
    """Logits from an ONNX Runtime session over an exported model, on the CPU."""

    def __init__(self, directory: Path, backend: str):
        super().__init__(directory, backend)
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own errors (InvalidProtobuf, Fail, ...) share no base
            raise self.error(f"not a valid ONNX model ({_first_line(err)})") from err
        inputs = sorted(i.name for i in self.session.get_inputs())
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != ["attention_mask", "input_ids"] or "logits" not in outputs:
            raise self.error(
                f"takes {inputs} and gives {outputs}, not vitopic's input_ids and attention_mask to logits"
            )

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]


class Ct2Runner(_ExportRunner):
    """Logits from the CTranslate2 int8 encoder of `vitopic export --ct2` and the checkpoint's own
    classification head (transformers' RobertaClassificationHead, fp32), on the CPU.

    CTranslate2 numbers positions from 0 over each sequence's length; its converter dropped
    RoBERTa's first padding_idx + 1 position rows, so position i is RoBERTa's padding_idx + 1 + i:
    the torch model's positions for every sequence without a padding id inside it (a literal
    `<pad>` in a text is the one difference).
    """

    def __init__(self, directory: Path):
        super().__init__(directory, "ct2-int8")
        ctranslate2 = import_extra("ctranslate2", "ct2", "backend 'ct2-int8'")
        check_inside(self.path, directory)
        if not self.path.is_dir():
            raise self.error("not a directory, as CTranslate2 models are")
        for path in self.path.iterdir():
            check_inside(path, directory)
        source = self.path / EXPORT_SOURCE
        try:
            recorded = json.loads(source.read_text("utf-8"))["fingerprint"]
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise self.error(f"no readable fingerprint of its checkpoint ({one_line(err)})", source) from err
        if recorded != weights_fingerprint(directory):
            raise self.error("stale: written for other weights than this checkpoint's", source)
        try:
            self.encoder = ctranslate2.Encoder(
                str(self.path),
                device="cpu",
                compute_type="int8",
                inter_threads=1,
                intra_threads=torch.get_num_threads(),
            )
        except (RuntimeError, ValueError) as err:
            raise self.error(f"not a valid CTranslate2 model ({_first_line(err)})") from err
        self._storage = ctranslate2.StorageView.from_array
        self.head = RobertaClassificationHead(RobertaConfig.from_pretrained(directory)).eval()
        self.head.load_state_dict(load_tensors(directory, "classifier."))

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        lengths = mask.sum(axis=1, dtype=np.int32)
        output = self.encoder.forward_batch(
            self._storage(np.ascontiguousarray(ids, dtype=np.int32)), self._storage(lengths)
        )
        with torch.inference_mode():
            return self.head(torch.as_tensor(np.asarray(output.last_hidden_state))).numpy()


def _first_line(err: BaseException) -> str:
    """An engine's error message, first line only."""
    return str(err).strip().partition("\n")[0]


def _validate_inputs(texts: object) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, _BYTES) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a str or a list of str, got {_kind(texts)}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {_kind(text)}, expected str")
    check_unicode(texts)
    return list(texts)


_BYTES = (bytes, bytearray, memoryview)


def _kind(value: object) -> str:
    """A value's type for a message, with what to do about bytes."""
    return (
        f"{type(value).__name__} (bytes: decode first, e.g. .decode('utf-8'))"
        if isinstance(value, _BYTES)
        else type(value).__name__
    )


def _number(value: object, kind: type) -> bool:
    """Whether `value` is a `kind` (numbers.Integral or numbers.Real: Python's or numpy's), not a bool."""
    return isinstance(value, kind) and not isinstance(value, bool | np.bool_)


def _count(value: object) -> bool:
    """Whether `value` is an integer >= 1 (not a bool)."""
    return _number(value, numbers.Integral) and value >= 1


def _check_options(batch_size: object, threshold: object, split: object, top_k: object, head: Head) -> None:
    if not _count(batch_size):
        raise ValueError(f"batch_size must be an integer >= 1, got {shown(batch_size)}")
    if top_k is not None and not _count(top_k):
        raise ValueError(f"top_k must be an integer >= 1 or None, got {shown(top_k)}")
    if threshold is not None:
        if not head.uses_thresholds:
            raise ValueError(
                "threshold applies to multi_label models; a single_label model picks its most probable class"
            )
        if not _number(threshold, numbers.Real) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a number in [0, 1], got {shown(threshold)}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {shown(split)}")


def _windows(ids: list[int], size: int) -> list[list[int]]:
    """Windows of at most `size` ids, overlapping by half, covering the whole sequence."""
    if len(ids) <= size:
        return [ids]
    stride = max(size // 2, 1)
    starts = [*list(range(0, len(ids) - size, stride)), len(ids) - size]
    return [ids[s : s + size] for s in starts]
