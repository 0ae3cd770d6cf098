"""Files in and out of `vitopic predict`: input records (lines, JSONL, CSV) and prediction rows.

Every input line gives one output row, in order, with every input field passed through. Output
is written to a temporary name and renamed, so a file is either complete or absent.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm.auto import tqdm

from vitopic.data import (
    DataError,
    check_surrogates,
    iter_lines,
    parse_json_line,
    read_csv,
    stream_lines,
)

if TYPE_CHECKING:
    from vitopic.predict import Prediction, TopicClassifier

FORMATS = ("jsonl", "csv", "table")
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
PREDICTED = ("labels", "scores", "empty", "pieces")  # the fields predict adds to each row
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection


def read_records(source: str | None, text_field: str = "text") -> Iterator[dict]:
    """Records from a file (`None`: stdin), streamed: CSV with a header when the name ends in .csv,
    else one per line, each a JSON object holding `text_field` or a plain line of text (blank lines
    kept). A missing file fails here; a bad line when the reader reaches it, naming the line."""
    if source is not None and Path(source).suffix.lower() == ".csv":
        return _csv_records(Path(source), text_field)
    if source is not None:
        return _line_records(iter_lines(Path(source), DataError), source, text_field)
    if sys.stdin is None or sys.stdin.isatty():
        raise DataError("no input: give texts as arguments, --input FILE, or pipe text on stdin")
    # A text-only stand-in for stdin (no .buffer) is read whole.
    stdin = getattr(sys.stdin, "buffer", None) or io.BytesIO(sys.stdin.read().encode())
    return _line_records(stream_lines(stdin, "<stdin>", DataError), "<stdin>", text_field)


def _line_records(lines: Iterator[str], name: str, text_field: str) -> Iterator[dict]:
    for lineno, line in enumerate(lines, start=1):
        if not line.lstrip().startswith("{"):
            yield {text_field: line}
            continue
        row = parse_json_line(line, f"{name}:{lineno}")
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise DataError(f"{name}:{lineno}: a JSON line needs a string {text_field!r} field")
        check_surrogates(row[text_field], f"{name}:{lineno}", text_field)
        yield row


def _csv_records(path: Path, text_field: str) -> Iterator[dict]:
    columns, rows = read_csv(path)
    if text_field not in columns:
        raise DataError(
            f"{path}:1: no {text_field!r} column in the header {columns}; choose one with --text-field"
        )
    return ({k: ("" if v is None else v) for k, v in row.items()} for _, row in rows)


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
        raise DataError(
            f"{path}: cannot tell the format from {suffix or 'no suffix'!r}; name "
            f"the file .jsonl or .csv, or give --format ({'|'.join(FORMATS)})"
        )
    return _SUFFIX_FORMATS[suffix]


def input_columns(record: dict, taken: Iterable[str] = PREDICTED) -> dict:
    """The record's fields, each named like an output field (`taken`) kept as `input_<name>`:
    a labeled file keeps its gold labels."""
    taken = set(taken)
    return {f"input_{k}" if k in taken else k: v for k, v in record.items()}


def prediction_row(
    record: dict, prediction: Prediction, top_k: int | None = None, pieces: bool = False
) -> dict:
    """The record (see `input_columns`) with the prediction added."""
    row = input_columns(record)
    scores = (
        sorted(prediction.scores.items(), key=lambda kv: -kv[1])[:top_k]
        if top_k
        else prediction.scores.items()
    )
    row["labels"] = prediction.labels
    row["scores"] = {k: round(v, 4) for k, v in scores}
    row["empty"] = prediction.empty
    if pieces:
        row["pieces"] = [
            {"text": p.text, "scores": {k: round(v, 4) for k, v in p.scores.items()}}
            for p in prediction.pieces
        ]
    return row


def predict_rows(
    classifier: TopicClassifier,
    records: Iterable[dict],
    text_field: str,
    chunk: int,
    progress: bool = False,
    top_k: int | None = None,
    pieces: bool = False,
    **options: Any,
) -> Iterator[dict]:
    """Output rows for `records`, predicted `chunk` records at a time (memory stays constant in
    the number of records); `options` go to `predict`. `progress`: a bar on stderr, in records."""
    bar = tqdm(desc="predict", unit="line", disable=not progress)
    records = iter(records)
    with bar:
        while batch := list(itertools.islice(records, chunk)):
            predictions = classifier.predict([r[text_field] for r in batch], **options)
            bar.update(len(batch))
            for record, prediction in zip(batch, predictions, strict=True):
                yield prediction_row(record, prediction, top_k, pieces)


def write_rows(
    rows: Iterable[dict], fmt: str, labels: list[str], out: TextIO, text_field: str = "text"
) -> int:
    """Write rows as they come, as JSONL, CSV (formula-like cells neutralised; the columns are
    the first row's) or an aligned table; the count."""
    count = 0
    writer = None
    fields: list[str] = []
    for count, row in enumerate(rows, start=1):
        if fmt == "jsonl":
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif fmt == "csv":
            if writer is None:
                fields = [k for k in row if k not in PREDICTED]
                writer = csv.writer(out)
                writer.writerow([*fields, "labels", *labels, "empty"])
            if extra := [k for k in row if k not in PREDICTED and k not in fields]:
                raise DataError(
                    f"input record {count} has field(s) {extra} that the first "
                    f"record lacks; CSV output needs the same fields in every "
                    "record (write JSONL instead)"
                )
            writer.writerow(
                [
                    *(_csv_safe(row.get(k, "")) for k in fields),
                    ";".join(row["labels"]),
                    *(row["scores"].get(lab, "") for lab in labels),
                    row["empty"],
                ]
            )
        else:
            if count == 1:
                out.write(_table_head(labels))
            out.write(_table_row(count, row, labels, text_field))
    return count


def _csv_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading `'`."""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) else value


def _table_head(labels: list[str]) -> str:
    head = [f"{lab[:11]:>11}" for lab in labels]
    return f"{'#':>5}  {' '.join(head)}  {'labels':<24}  text\n"


def _table_row(number: int, row: dict, labels: list[str], text_field: str, width: int = 60) -> str:
    cells = [f"{row['scores'][lab]:>11.3f}" if lab in row["scores"] else f"{'':>11}" for lab in labels]
    text = " ".join(str(row.get(text_field, "")).split())
    text = text if len(text) <= width else text[: width - 1] + "…"
    chosen = "(empty)" if row["empty"] else ",".join(row["labels"]) or "-"
    return f"{number:>5}  {' '.join(cells)}  {chosen:<24}  {text}\n"


def write_atomically(
    path: Path, rows: Iterable[dict], fmt: str, labels: list[str], text_field: str = "text"
) -> int:
    """Write to a hidden temporary file beside `path`, renamed into place only when complete."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            count = write_rows(rows, fmt, labels, f, text_field)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count
