"""Reading labeled JSONL files (`{"id", "text", "labels"}`), with `file:line` in every error."""

from __future__ import annotations

import csv
import json
import math
import random
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vitopic.errors import VitopicError, one_line
from vitopic.text import split_lines, surrogate_at

MAX_SHOWN = 20  # bad rows named in one error; the rest are counted


class DataError(VitopicError, ValueError):
    """A bad dataset file or row, or several: one line each, starting with `file:line`, the first
    MAX_SHOWN of them (`problems`), then "... and N more" (`more`)."""

    def __init__(self, *problems: str, more: int = 0):
        self.problems, self.more = list(problems), more
        super().__init__("\n".join([*problems, f"... and {more} more"] if more else problems))


class Problems:
    """Collects DataErrors (keeping MAX_SHOWN lines) to raise them at once."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.count = 0

    def add(self, err: DataError) -> None:
        self.count += len(err.problems) + err.more
        self.shown += err.problems[: MAX_SHOWN - len(self.shown)]

    def raise_any(self) -> None:
        if self.count:
            raise DataError(*self.shown, more=self.count - len(self.shown))


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    labels: tuple[str, ...]
    line: int


def read_examples(
    path: str | Path, labels: list[str] | tuple[str, ...] | None, require_nfc: bool = False
) -> list[Example]:
    """Labeled examples from JSONL, CSV with a header (`text`, `labels` separated by `;`, an
    optional `id`), or a `datasets` dataset saved with `save_to_disk` (a directory). Every error
    names the file and line (or row); see `read_jsonl` for the checks."""
    path = Path(path)
    if path.is_dir():
        return _examples(path, _dataset_rows(path), labels, require_nfc)
    if path.suffix.lower() == ".csv":
        return _examples(path, _csv_rows(path), labels, require_nfc)
    return read_jsonl(path, labels, require_nfc)


def read_jsonl(
    path: str | Path, labels: list[str] | tuple[str, ...] | None, require_nfc: bool = False
) -> list[Example]:
    """Read and validate one labeled JSONL file. A UTF-8 BOM and CRLF endings are accepted.

    Text is normalised to NFC; with `require_nfc`, text that is not NFC is an error instead.
    `labels=None` accepts any label (check them later with `check_labels`).
    """
    path = Path(path)
    rows = ((n, f"{path}:{n}", line) for n, line in enumerate(iter_lines(path, DataError), 1) if line.strip())
    return _examples(path, rows, labels, require_nfc, parse_json_line)


Rows = Iterable[tuple[int, str, object]]  # (line or row number, where for errors, the row)


def _csv_rows(path: Path) -> Rows:
    columns, rows = read_csv(path)
    if not {"text", "labels"} <= set(columns):
        raise DataError(f"{path}:1: a CSV dataset needs 'text' and 'labels' columns, got {columns}")
    for line, row in rows:
        where = f"{path}:{line}"
        row["labels"] = [lab.strip() for lab in (row["labels"] or "").split(";") if lab.strip()]
        if not row.get("id"):
            row.pop("id", None)
        yield line, where, row


def _dataset_rows(path: Path) -> Rows:
    import datasets

    try:
        dataset = datasets.load_from_disk(str(path))
    except Exception as err:  # datasets raises anything (IndexError, KeyError...) on a damaged directory
        raise DataError(f"{path}: {_unreadable_dataset(path, err)}") from err
    if isinstance(dataset, datasets.DatasetDict):
        raise DataError(
            f"{path}: a DatasetDict with splits {list(dataset)}; name one split's "
            f"directory (e.g. {path / next(iter(dataset))})"
        )
    for i, row in enumerate(dataset):
        if isinstance(row.get("labels"), str):
            row["labels"] = [lab.strip() for lab in row["labels"].split(";") if lab.strip()]
        yield i, f"{path}[row {i}]", row


def _unreadable_dataset(path: Path, err: Exception) -> str:
    """Why `datasets` could not open the directory `path`, for a user."""
    try:
        shards = json.loads((path / "state.json").read_text("utf-8")).get("_data_files")
    except (OSError, ValueError, AttributeError):
        shards = None
    if shards == []:
        return "no examples (a saved dataset with no rows)"
    return (
        f"a directory, but not a readable dataset saved with save_to_disk ({one_line(err)}); "
        "save it again with Dataset.save_to_disk"
    )


def _examples(
    path: Path,
    rows: Rows,
    labels: list[str] | tuple[str, ...] | None,
    require_nfc: bool,
    parse: Callable[[Any, str], object] = lambda row, where: row,
) -> list[Example]:
    """Validate rows (each `parse`d first) into examples; one DataError naming every bad row (see
    DataError), and the problem that stopped the reading, if one did."""
    examples: list[Example] = []
    seen_ids: dict[str, int] = {}
    problems = Problems()
    try:
        for lineno, where, raw in rows:
            try:
                examples.append(
                    _example(path, lineno, where, parse(raw, where), labels, require_nfc, seen_ids)
                )
            except DataError as err:
                problems.add(err)
    except DataError as err:  # the file cannot be read on (not UTF-8, broken CSV)
        problems.add(err)
    problems.raise_any()
    if not examples:
        raise DataError(f"{path}: no examples (the file is empty)")
    return examples


def _example(
    path: Path,
    lineno: int,
    where: str,
    row: object,
    labels: list[str] | tuple[str, ...] | None,
    require_nfc: bool,
    seen_ids: dict[str, int],
) -> Example:
    """One validated example (its id added to `seen_ids`), or a DataError at `where`."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    text = row.get("text")
    if not isinstance(text, str):
        raise DataError(f"{where}: missing or non-string 'text'")
    if not text.strip():
        raise DataError(f"{where}: empty 'text'")
    check_surrogates(text, where)
    if require_nfc and not unicodedata.is_normalized("NFC", text):
        raise DataError(f"{where}: text is not Unicode NFC")
    row_labels = row.get("labels")
    if not isinstance(row_labels, list) or not all(isinstance(x, str) for x in row_labels):
        raise DataError(f"{where}: 'labels' must be a list of strings")
    if labels is not None:
        _check_row_labels(row_labels, labels, where)
    ex_id = row.get("id", f"{path.stem}-{lineno}")
    if not isinstance(ex_id, str | int) or isinstance(ex_id, bool):
        raise DataError(f"{where}: 'id' must be a string or integer")
    ex_id = str(ex_id)
    if ex_id in seen_ids:
        raise DataError(f"{where}: duplicate id {ex_id!r} (first on line {seen_ids[ex_id]})")
    seen_ids[ex_id] = lineno
    return Example(ex_id, unicodedata.normalize("NFC", text), tuple(dict.fromkeys(row_labels)), lineno)


def check_surrogates(text: str, where: str, field: str = "text") -> None:
    """DataError at `where` if `text` holds a lone surrogate (no valid encoding exists)."""
    if (at := surrogate_at(text)) >= 0:
        raise DataError(f"{where}: {field!r} holds a lone surrogate at character {at} (not valid Unicode)")


def _check_row_labels(
    row_labels: list[str] | tuple[str, ...], labels: list[str] | tuple[str, ...], where: str
) -> None:
    unknown = sorted(set(row_labels) - set(labels))
    if unknown:
        raise DataError(f"{where}: unknown label(s) {unknown}; known: {sorted(labels)}")


def check_labels(examples: list[Example], labels: list[str] | tuple[str, ...], path: str | Path) -> None:
    """DataError naming every example (file:line) whose labels are not all in `labels`."""
    problems = Problems()
    for ex in examples:
        try:
            _check_row_labels(ex.labels, labels, f"{path}:{ex.line}")
        except DataError as err:
            problems.add(err)
    problems.raise_any()


def iter_lines(path: Path, error: type[VitopicError]) -> Iterator[str]:
    """The lines of a UTF-8 text file, one at a time (BOM and CRLF accepted; only \\n, \\r\\n,
    \\r end a line), or `error` naming the file: missing or a directory (at once), or not UTF-8
    (naming the line, when the reader reaches it)."""
    try:
        stream = path.open("rb")
    except FileNotFoundError as err:
        raise error(f"{path}: file not found") from err
    except IsADirectoryError as err:
        raise error(f"{path}: is a directory, expected a file") from err
    return stream_lines(stream, str(path), error)


def stream_lines(stream: BinaryIO, name: str, error: type[VitopicError]) -> Iterator[str]:
    """The lines of a binary stream of UTF-8 text, decoded one at a time (closes the stream)."""
    count = 0
    with stream:
        for raw in stream:
            try:
                text = raw.decode("utf-8-sig" if count == 0 else "utf-8")
            except UnicodeDecodeError as err:
                raise error(
                    f"{name}:{count + 1}: not UTF-8 text (byte 0x{raw[err.start]:02x}); re-save it as UTF-8"
                ) from err
            pieces = split_lines(text)
            if text.endswith(("\n", "\r")):
                pieces.pop()  # the empty piece after the break
            count += len(pieces)
            yield from pieces


CSV_FIELD_LIMIT = 2**31 - 1  # characters in one cell (the csv module's default is 131,072)


def read_csv(path: Path) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """A UTF-8 CSV file with a header: its column names, and (line, row) for each row, streamed.
    A header naming a column twice, a row with more fields than the header, or any other CSV
    problem is a DataError naming file and line."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.DictReader(line + "\n" for line in iter_lines(path, DataError))

    def problem(err: csv.Error) -> DataError:
        return DataError(f"{path}:{reader.line_num}: not valid CSV ({err}); fix that line")

    try:
        columns = list(reader.fieldnames or [])
    except csv.Error as err:
        raise problem(err) from err
    if twice := sorted({c for c in columns if columns.count(c) > 1}):
        raise DataError(
            f"{path}:1: the header names column(s) {twice} more than once; rename or drop the copies"
        )

    def rows() -> Iterator[tuple[int, dict]]:
        try:
            for row in reader:
                if None in row:
                    raise DataError(f"{path}:{reader.line_num}: more fields than the header has")
                yield reader.line_num, row
        except csv.Error as err:
            raise problem(err) from err

    return columns, rows()


def parse_json_line(line: str, where: str) -> object:
    """One JSON value, or a DataError at `where` (also for over-long numbers and deep nesting)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: invalid JSON ({err.msg})") from err
    except (ValueError, RecursionError) as err:  # int over 4,300 digits; nesting too deep
        raise DataError(
            f"{where}: unreadable JSON ({str(err).split(';')[0] or 'nested too deeply'})"
        ) from err


def multi_hot(examples: list[Example], labels: list[str] | tuple[str, ...]) -> np.ndarray:
    """(n, len(labels)) float32 matrix of the examples' labels."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(examples), len(labels)), dtype=np.float32)
    for row, ex in enumerate(examples):
        for label in ex.labels:
            out[row, index[label]] = 1.0
    return out


def hold_out(
    examples: list[Example], shares: dict[str, float], seed: int
) -> tuple[list[Example], dict[str, list[Example]]]:
    """Split `examples` into the rest and a part per share, stratified on label sets: each label
    set's examples, shuffled by `seed`, are dealt to the parts in proportion (within one example).
    Every list keeps the file's order."""
    rng = random.Random(seed)
    groups: dict[tuple[str, ...], list[Example]] = defaultdict(list)
    for ex in examples:
        groups[tuple(sorted(ex.labels))].append(ex)
    rest: list[Example] = []
    for key in sorted(groups):
        rng.shuffle(groups[key])
        rest += groups[key]
    parts, left = {}, 1.0
    for name, share in shares.items():
        parts[name], rest = _every(rest, share / left)
        left -= share
    return _in_file_order(rest), {name: _in_file_order(part) for name, part in parts.items()}


def _every(examples: list[Example], share: float) -> tuple[list[Example], list[Example]]:
    """`share` of `examples` spread evenly over the list (systematic sampling), and the others."""
    taken = [math.floor((k + 1) * share) > math.floor(k * share) for k in range(len(examples))]
    return (
        [ex for ex, t in zip(examples, taken, strict=True) if t],
        [ex for ex, t in zip(examples, taken, strict=True) if not t],
    )


def _in_file_order(examples: list[Example]) -> list[Example]:
    return sorted(examples, key=lambda ex: ex.line)
