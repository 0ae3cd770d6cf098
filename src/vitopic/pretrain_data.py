"""Unlabeled text for masked-LM pretraining: read, prepared once, cached as token ids, packed.

Sources are JSONL (`{"text": ...}` per line; `.jsonl`, `.jsonl.gz`, `.jsonl.xz`) or plain text
(`.txt`, `.txt.gz`, `.txt.xz`; one document per line), streamed line by line. Each document is
split into sentences and prepared by `text.prepare` (the fine-tuning path), then tokenized with
PhoBERT's tokenizer. The ids are cached per source (`uint16`: PhoBERT has 64,001 ids) with the
sentence boundaries, so a second run (or `--resume`) skips the slow segmentation. Every
`holdout_every`-th document goes to the source's held-out slice.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from vitopic.data import DataError
from vitopic.text import prepare, split_sentences

CACHE_VERSION = "1"  # bump when preparation or the cache layout changes
PREPARE_BATCH = 512  # sentences prepared and tokenized at a time
PROGRESS_SECONDS = 30.0
SPLITS = ("train", "heldout")


def say(message: str) -> None:
    """A progress line, flushed at once (long runs log to files, where print would buffer it)."""
    print(message, flush=True)


def _open_raw(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(the compressed file, a decompressed binary stream over it)."""
    raw = open(path, "rb")  # noqa: SIM115  closed by the caller through the stream
    if path.suffix == ".gz":
        return raw, gzip.GzipFile(fileobj=raw)
    if path.suffix == ".xz":
        return raw, lzma.LZMAFile(raw)
    return raw, raw


def _is_jsonl(path: Path) -> bool:
    suffixes = path.suffixes
    return (
        suffixes[-2] if suffixes[-1] in (".gz", ".xz") and len(suffixes) > 1 else suffixes[-1]
    ) == ".jsonl"


def iter_documents(path: Path, progress: Callable[[float], None] | None = None) -> Iterator[str]:
    """Each document's text, streamed; `progress(fraction of the file read)` now and then.

    A line that is not valid JSON (or has no string "text") is a DataError naming file and line.
    """
    raw, stream = _open_raw(path)
    size = max(os.path.getsize(path), 1)
    jsonl = _is_jsonl(path)
    with raw, stream:
        for number, line in enumerate(stream, start=1):
            if progress:
                progress(raw.tell() / size)
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{number}: not UTF-8 ({err.reason})") from err
            if jsonl:
                if not text.strip():
                    continue
                try:
                    text = json.loads(text).get("text")
                except (json.JSONDecodeError, AttributeError) as err:
                    raise DataError(f"{path}:{number}: not a JSON object ({err})") from err
                if not isinstance(text, str):
                    raise DataError(f'{path}:{number}: needs a string "text" field')
            if text.strip():
                yield text


@dataclass(frozen=True)
class Prepared:
    """One source's cached ids: `ids` (every sentence's pieces, end to end), `ends` (each sentence's
    end offset in `ids`) and `doc_starts` (True where a sentence begins a document)."""

    ids: np.ndarray
    ends: np.ndarray
    doc_starts: np.ndarray

    @property
    def tokens(self) -> int:
        return int(self.ids.size)

    @classmethod
    def load(cls, stem: Path) -> Prepared:
        return cls(
            np.load(f"{stem}.ids.npy", mmap_mode="r"),
            np.load(f"{stem}.ends.npy"),
            np.load(f"{stem}.docs.npy"),
        )


def cache_stem(cache_dir: Path, source: Path, segmenter: str, split: str) -> Path:
    """Where `source`'s prepared `split` lives: keyed by the file's name, size and mtime, the
    segmenter and the cache version (so an edited source or another segmenter is prepared anew)."""
    stat = source.stat()
    key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{segmenter}|{CACHE_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir / f"{source.name.split('.')[0]}-{segmenter}-{digest}.{split}"


def prepare_source(
    source: Path,
    cache_dir: Path,
    segmenter: str,
    tokenizer,
    holdout_every: int,
    log: Callable[[str], None] = say,
) -> dict[str, Prepared]:
    """`source` prepared and tokenized into the cache (done once), loaded as {split: Prepared}."""
    stems = {split: cache_stem(cache_dir, source, segmenter, split) for split in SPLITS}
    if all(Path(f"{stem}.docs.npy").is_file() for stem in stems.values()):
        return {split: Prepared.load(stem) for split, stem in stems.items()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    lengths: dict[str, list[int]] = {s: [] for s in SPLITS}
    starts: dict[str, list[bool]] = {s: [] for s in SPLITS}
    pending: list[tuple[str, bool, str]] = []  # (split, starts a document, sentence)
    start, last = time.monotonic(), [time.monotonic()]
    log(f"pretrain data: preparing {source.name} with {segmenter} (once; cached in {cache_dir})")

    def flush() -> None:
        texts = prepare([s for _, _, s in pending], segmenter)
        encoded = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        for (split, first, _), piece_ids in zip(pending, encoded, strict=True):
            if piece_ids:
                ids[split].append(np.asarray(piece_ids, dtype=np.uint16))
                lengths[split].append(len(piece_ids))
                starts[split].append(first)
            elif first:  # an empty first sentence: the next one starts the document
                pending_first[split] = True
        pending.clear()

    pending_first = {s: False for s in SPLITS}

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_SECONDS and fraction > 0:
            last[0] = now
            elapsed = now - start
            log(
                f"pretrain data: {source.name} {fraction:.0%}, {sum(lengths['train']):,} tokens, "
                f"{elapsed / 60:.1f} min, about {elapsed * (1 - fraction) / fraction / 60:.0f} min left"
            )

    for number, document in enumerate(iter_documents(source, progress)):
        split = "heldout" if holdout_every and number % holdout_every == holdout_every - 1 else "train"
        for i, sentence in enumerate(split_sentences(document)):
            first = i == 0 or pending_first[split]
            pending_first[split] = False
            pending.append((split, first, sentence))
        if len(pending) >= PREPARE_BATCH:
            flush()
    if pending:
        flush()
    for split, stem in stems.items():
        flat = np.concatenate(ids[split]) if ids[split] else np.zeros(0, np.uint16)
        _save(f"{stem}.ids.npy", flat)
        _save(f"{stem}.ends.npy", np.cumsum(np.asarray(lengths[split], dtype=np.int64)))
        _save(f"{stem}.docs.npy", np.asarray(starts[split], dtype=bool))  # written last: marks done
    log(
        f"pretrain data: {source.name} done, {sum(lengths['train']):,} train and "
        f"{sum(lengths['heldout']):,} held-out tokens in {(time.monotonic() - start) / 60:.1f} min"
    )
    return {split: Prepared.load(stem) for split, stem in stems.items()}


def sentences(prepared: Prepared) -> Iterator[np.ndarray]:
    """Each sentence's ids, in order."""
    begin = 0
    for end in prepared.ends.tolist():
        yield prepared.ids[begin:end]
        begin = end


def _save(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.{os.getpid()}.tmp.npy"
    np.save(tmp, array)
    os.replace(tmp, path)


SEPARATOR = 2  # `</s>`, between two documents packed into one sequence (RoBERTa's FULL-SENTENCES)


def pack(prepared: Prepared, max_tokens: int) -> np.ndarray:
    """Sequences of whole consecutive sentences, as [first, stop) sentence indices, each at most
    `max_tokens` long counting a `</s>` between documents (a longer sentence alone is cut)."""
    ends = prepared.ends
    lengths = np.diff(np.concatenate([[0], ends])) if ends.size else ends
    spans, first, used = [], 0, 0
    for i, (length, doc_start) in enumerate(zip(lengths.tolist(), prepared.doc_starts.tolist(), strict=True)):
        cost = length + (1 if doc_start and i > first else 0)
        if i > first and used + cost > max_tokens:
            spans.append((first, i))
            first, cost = i, length
            used = 0
        used += cost
    if ends.size:
        spans.append((first, int(ends.size)))
    return np.asarray(spans, dtype=np.int64).reshape(-1, 2)


def sequence(prepared: Prepared, first: int, stop: int, max_tokens: int) -> np.ndarray:
    """The ids of sentences [first, stop), `</s>` before each later document, cut at `max_tokens`."""
    ends = prepared.ends
    parts = []
    for i in range(first, stop):
        begin = int(ends[i - 1]) if i else 0
        if i > first and prepared.doc_starts[i]:
            parts.append(np.array([SEPARATOR], dtype=np.int64))
        parts.append(np.asarray(prepared.ids[begin : int(ends[i])], dtype=np.int64))
    return np.concatenate(parts)[:max_tokens]
