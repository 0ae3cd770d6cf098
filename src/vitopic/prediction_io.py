"""Files in and out of `vitopic predict`: input records (lines, JSONL, CSV) and prediction rows.

Every input line gives one output row, in order, with every input field passed through. Output
is written to a temporary name and renamed, so a file is either complete or absent.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from vitopic.data import DataError, lines_of, parse_json_line, read_csv, read_lines

if TYPE_CHECKING:
    from vitopic.predict import Prediction

FORMATS = ("jsonl", "csv", "table")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
PREDICTED = ("labels", "scores", "empty", "pieces")  # the fields predict adds to each row
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection


def read_records(source: str | None, text_field: str = "text") -> list[dict]:
    """Records from a file (`None`: stdin): CSV with a header when the name ends in .csv, else one
    per line, each a JSON object holding `text_field` or a plain line of text (blank lines kept)."""
    if source is not None and Path(source).suffix.lower() == ".csv":
        return _read_csv(Path(source), text_field)
    name = source or "<stdin>"
    lines = read_lines(Path(source), DataError) if source is not None else _stdin_lines()
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.lstrip().startswith("{"):
            records.append({text_field: line})
            continue
        row = parse_json_line(line, f"{name}:{lineno}")
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise DataError(f"{name}:{lineno}: a JSON line needs a string {text_field!r} field")
        records.append(row)
    if not records:
        raise DataError(f"{name}: no input (it is empty)")
    return records


def _stdin_lines() -> list[str]:
    if sys.stdin is None or sys.stdin.isatty():
        raise DataError("no input: give texts as arguments, --input FILE, or pipe text on stdin")
    return lines_of(sys.stdin.read())


def _read_csv(path: Path, text_field: str) -> list[dict]:
    columns, rows = read_csv(path)
    if text_field not in columns:
        raise DataError(f"{path}:1: no {text_field!r} column in the header {columns}; "
                        "choose one with --text-field")
    records = [{k: ("" if v is None else v) for k, v in row.items()} for _, row in rows]
    if not records:
        raise DataError(f"{path}: no rows under the header")
    return records


def output_format(path: str | None, requested: str | None) -> str:
    """The format to write: as asked, else from the output file's suffix (unknown suffix: error).
    A path that cannot be written (a directory, or in none) is refused here, before any work."""
    if path is not None and Path(path).is_dir():
        raise DataError(f"{path}: is a directory; --output needs a file name")
    if path is not None and not Path(path).parent.is_dir():
        raise DataError(f"{path}: the directory {Path(path).parent} does not exist")
    if requested or path is None:
        return requested or "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise DataError(f"{path}: cannot tell the format from {suffix or 'no suffix'!r}; name "
                        f"the file .jsonl or .csv, or give --format ({'|'.join(FORMATS)})")
    return _SUFFIX_FORMATS[suffix]


def prediction_row(record: dict, prediction: Prediction, top_k: int | None = None,
                   pieces: bool = False) -> dict:
    """The record with the prediction added; input fields named like predicted ones are kept
    under `input_<name>` (so a labeled file keeps its gold labels)."""
    row = {f"input_{k}" if k in PREDICTED else k: v for k, v in record.items()}
    scores = sorted(prediction.scores.items(), key=lambda kv: -kv[1])[:top_k] if top_k \
        else prediction.scores.items()
    row["labels"] = prediction.labels
    row["scores"] = {k: round(v, 4) for k, v in scores}
    row["empty"] = prediction.empty
    if pieces:
        row["pieces"] = [{"text": p.text, "scores": {k: round(v, 4) for k, v in p.scores.items()}}
                         for p in prediction.pieces]
    return row


def write_rows(rows: Iterable[dict], fmt: str, labels: list[str], out: TextIO,
               text_field: str = "text") -> int:
    """Write rows as JSONL, CSV (formula-like cells neutralised) or an aligned table; the count."""
    count = 0
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
        return count
    rows = list(rows)
    if fmt == "csv":
        fields = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in PREDICTED]
        writer = csv.writer(out)
        writer.writerow([*fields, "labels", *labels, "empty"])
        for row in rows:
            writer.writerow([*(_csv_safe(row.get(k, "")) for k in fields), ";".join(row["labels"]),
                             *(row["scores"].get(lab, "") for lab in labels), row["empty"]])
        return len(rows)
    out.writelines(_table(rows, labels, text_field))
    return len(rows)


def _csv_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading `'`."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) else value


def _table(rows: list[dict], labels: list[str], text_field: str, width: int = 60
           ) -> Iterator[str]:
    head = [f"{lab[:11]:>11}" for lab in labels]
    yield f"{'#':>5}  {' '.join(head)}  {'labels':<24}  text\n"
    for i, row in enumerate(rows, start=1):
        cells = [f"{row['scores'][lab]:>11.3f}" if lab in row["scores"] else f"{'':>11}"
                 for lab in labels]
        text = " ".join(str(row.get(text_field, "")).split())
        text = text if len(text) <= width else text[:width - 1] + "…"
        chosen = "(empty)" if row["empty"] else ",".join(row["labels"]) or "-"
        yield f"{i:>5}  {' '.join(cells)}  {chosen:<24}  {text}\n"


def write_atomically(path: Path, rows: Iterable[dict], fmt: str, labels: list[str],
                     text_field: str = "text") -> int:
    """Write to a hidden temporary file beside `path`, renamed into place only when complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            count = write_rows(rows, fmt, labels, f, text_field)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
