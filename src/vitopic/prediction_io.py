"""Files in and out of `vitopic predict`: input records (lines, JSONL, CSV) and prediction rows.

Every input line gives one output row, in order, with every input field passed through. Output
is written to a unique temporary name and renamed, so a file is either complete or absent.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from vitopic.data import (
    DataError,
    check_surrogates,
    iter_lines,
    parse_json_line,
    read_csv,
    stream_lines,
)
from vitopic.files import open_replacing
from vitopic.progress import Progress

if TYPE_CHECKING:
    from vitopic.predict import Prediction, TopicClassifier

FORMATS = ("jsonl", "csv", "table")
INPUT_FORMATS = ("text", "jsonl", "csv")
_INPUT_SUFFIXES = {".txt": "text", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_SUFFIX_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
PREDICTED = ("labels", "scores", "empty", "pieces")  # the fields of `Prediction.to_row`
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # OWASP CSV injection


def read_records(source: str | None, text_field: str = "text", fmt: str | None = None) -> Iterator[dict]:
    """Records from a file (`None`: stdin), streamed, in one format for the whole file: `fmt`
    (see INPUT_FORMATS), else the name's suffix (.csv, .jsonl/.json/.ndjson, .txt), else the first
    non-blank line (JSONL if it is a JSON object with a string `text_field`, else plain text).
    Plain text is one record per line (blank lines kept); JSONL each non-blank line an object
    holding `text_field`; CSV has a header. A missing file fails here; a bad line when the reader
    reaches it, naming the line."""
    name = source or "<stdin>"
    fmt = fmt or (_INPUT_SUFFIXES.get(Path(source).suffix.lower()) if source else None)
    if fmt == "csv":
        if source is None:
            raise DataError("CSV input is read from a file: give --input FILE.csv")
        return _csv_records(Path(source), text_field)
    lines = iter_lines(Path(source), DataError) if source else _stdin_lines()
    if fmt is None:
        head = []  # up to the first non-blank line
        for line in lines:
            head.append(line)
            if line.strip():
                break
        fmt = "jsonl" if head and _is_record(head[-1], text_field) else "text"
        lines = itertools.chain(head, lines)
    if fmt == "jsonl":
        return _json_records(lines, name, text_field)
    return ({text_field: line} for line in lines)


def _stdin_lines() -> Iterator[str]:
    if sys.stdin is None or sys.stdin.isatty():
        raise DataError("no input: give texts as arguments, --input FILE, or pipe text on stdin")
    # A text-only stand-in for stdin (no .buffer) is read whole.
    stdin = getattr(sys.stdin, "buffer", None) or io.BytesIO(sys.stdin.read().encode())
    return stream_lines(stdin, "<stdin>", DataError)


def _is_record(line: str, text_field: str) -> bool:
    """Whether `line` is a JSONL record: a JSON object with a string `text_field`."""
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(row, dict) and isinstance(row.get(text_field), str)


def _json_records(lines: Iterator[str], name: str, text_field: str) -> Iterator[dict]:
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            yield {text_field: line}
            continue
        row = parse_json_line(line, f"{name}:{lineno}")
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise DataError(
                f"{name}:{lineno}: a JSON line needs a string {text_field!r} field "
                "(plain text? give --input-format text)"
            )
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
    """The record's fields, each named like an output field (`taken`) kept as `input_<name>`
    (`input_input_<name>` where that is a field too, and so on): a labeled file keeps its gold
    labels, and no field overwrites another."""
    taken = set(taken)
    out: dict = {}
    for key, value in record.items():
        name = key
        while name in taken or name in out or (name != key and name in record):
            name = f"input_{name}"
        out[name] = value
    return out


def prediction_row(record: dict, prediction: Prediction, pieces: bool = False) -> dict:
    """The record (see `input_columns`) with the prediction's fields (`Prediction.to_row`) added."""
    return {**input_columns(record), **prediction.to_row(pieces)}


def count_records(path: Path, fmt: str | None = None) -> int:
    """About how many records `read_records` will give for a file, counted cheaply: its lines
    (less a CSV's header; a CSV cell holding line breaks counts more than once)."""
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    csv_input = (fmt or _INPUT_SUFFIXES.get(path.suffix.lower())) == "csv"
    return max(lines - csv_input, 0)


def predict_rows(
    classifier: TopicClassifier,
    records: Iterable[dict],
    text_field: str,
    chunk: int,
    progress: bool = False,
    pieces: bool = False,
    total: int | None = None,
    **options: Any,
) -> Iterator[dict]:
    """Output rows for `records`, predicted `chunk` records at a time (memory stays constant in
    the number of records); `options` (top_k, threshold, ...) go to `predict`. `progress`: shown
    on stderr in texts, of `total` (see `vitopic.progress`)."""
    bar = Progress("predict", total, "texts", enabled=progress)
    records = iter(records)
    with bar:
        while batch := list(itertools.islice(records, chunk)):
            predictions = classifier.predict([r[text_field] for r in batch], **options)
            bar.update(len(batch))
            for record, prediction in zip(batch, predictions, strict=True):
                yield prediction_row(record, prediction, pieces)


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
    head = [f"{printable(lab)[:11]:>11}" for lab in labels]
    return f"{'#':>5}  {' '.join(head)}  {'labels':<24}  text\n"


def _table_row(number: int, row: dict, labels: list[str], text_field: str, width: int = 60) -> str:
    cells = [f"{row['scores'][lab]:>11.3f}" if lab in row["scores"] else f"{'':>11}" for lab in labels]
    text = printable(" ".join(str(row.get(text_field, "")).split()))
    text = text if len(text) <= width else text[: width - 1] + "…"
    chosen = "(empty)" if row["empty"] else printable(",".join(row["labels"])) or "-"
    return f"{number:>5}  {' '.join(cells)}  {chosen:<24}  {text}\n"


def printable(text: str) -> str:
    """`text` with every control, format or unassigned character (terminal escapes, BEL, bidi
    overrides, zero-width marks) written as a visible escape such as `\\x1b`, so a terminal
    shows the input rather than obeying it (the table format, `evaluate --errors`)."""
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c).startswith("C") else c
        for c in text
    )


def write_atomically(
    path: Path, rows: Iterable[dict], fmt: str, labels: list[str], text_field: str = "text"
) -> int:
    """Write `path` whole or not at all (a device or FIFO streamed): see `vitopic.files`."""
    with open_replacing(path) as f:
        return write_rows(rows, fmt, labels, f, text_field)
