"""Reading labeled JSONL files (`{"id", "text", "labels"}`), with `file:line` in every error."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitopic.errors import VitopicError


class DataError(VitopicError, ValueError):
    """A bad dataset file or row; the message starts with `file:line`."""


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    labels: tuple[str, ...]
    line: int


def read_jsonl(
    path: str | Path, labels: list[str] | tuple[str, ...], require_nfc: bool = False
) -> list[Example]:
    """Read and validate one labeled JSONL file. A UTF-8 BOM and CRLF endings are accepted.

    Text is normalised to NFC; with `require_nfc`, text that is not NFC is an error instead.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    known = set(labels)
    examples: list[Example] = []
    seen_ids: dict[str, int] = {}
    with open(path, encoding="utf-8-sig", newline=None) as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: invalid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            text = row.get("text")
            if not isinstance(text, str):
                raise DataError(f"{where}: missing or non-string 'text'")
            if not text.strip():
                raise DataError(f"{where}: empty 'text'")
            if require_nfc and not unicodedata.is_normalized("NFC", text):
                raise DataError(f"{where}: text is not Unicode NFC")
            row_labels = row.get("labels")
            if not isinstance(row_labels, list) or not all(isinstance(x, str) for x in row_labels):
                raise DataError(f"{where}: 'labels' must be a list of strings")
            unknown = sorted(set(row_labels) - known)
            if unknown:
                raise DataError(f"{where}: unknown label(s) {unknown}; known: {sorted(known)}")
            ex_id = row.get("id", f"{path.stem}-{lineno}")
            if not isinstance(ex_id, str | int) or isinstance(ex_id, bool):
                raise DataError(f"{where}: 'id' must be a string or integer")
            ex_id = str(ex_id)
            if ex_id in seen_ids:
                raise DataError(f"{where}: duplicate id {ex_id!r} (first on line {seen_ids[ex_id]})")
            seen_ids[ex_id] = lineno
            examples.append(Example(ex_id, unicodedata.normalize("NFC", text),
                                    tuple(dict.fromkeys(row_labels)), lineno))
    if not examples:
        raise DataError(f"{path}: no examples (the file is empty)")
    return examples


def multi_hot(examples: list[Example], labels: list[str] | tuple[str, ...]) -> np.ndarray:
    """(n, len(labels)) float32 matrix of the examples' labels."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(examples), len(labels)), dtype=np.float32)
    for row, ex in enumerate(examples):
        for label in ex.labels:
            out[row, index[label]] = 1.0
    return out
