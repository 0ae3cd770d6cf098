"""Writing files without destroying what is there: every file vitopic writes replaces the old one
whole, or not at all.

The new content goes to a temporary file created exclusively (a unique name, `O_EXCL`: never
another writer's file, never a link planted at the name) beside the target, is flushed to disk
and renamed over it. A failed write (a full disk, a kill) leaves the old file as it was. A target
that is not a regular file (a device such as /dev/null, a FIFO) is written to as it is, streamed:
never replaced by a file. A directory of files (an export) is filled beside its target and
renamed into place the same way (`replacing_directory`).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from vitopic.errors import VitopicError

_UMASK = os.umask(0)
os.umask(_UMASK)
_MODE = 0o666 & ~_UMASK  # what a plain `open(path, "w")` would have given the new file


def _special(path: Path) -> bool:
    """Whether `path` exists and is not a regular file or a directory (a device, FIFO, socket)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _fsync(path: Path) -> None:
    """Flush a written file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A name to write `path`'s new content under (for writers that take a name); it becomes
    `path` when the block ends without error (see the module doc)."""
    path = Path(path)
    if _special(path):
        yield path
        return
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, _MODE)
        os.close(fd)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def replacing_directory(path: str | Path) -> Iterator[Path]:
    """An empty directory beside `path` to fill; it becomes `path` when the block ends without
    error. A directory cannot be renamed over another, so an old `path` is first moved aside:
    `path` is never seen half-written, only briefly absent."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    old = tmp.with_suffix(".old")
    try:
        yield tmp
        for written in tmp.rglob("*"):
            if written.is_file():
                _fsync(written)
        if path.exists() or path.is_symlink():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink(missing_ok=True)


@contextmanager
def open_replacing(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """`path` opened for writing (UTF-8 text, newlines as written; or `binary`), replaced whole
    when the block ends without error (see `replacing`)."""
    with replacing(path) as target:
        if binary:
            with open(target, "wb") as f:
                yield f
        else:
            with open(target, "w", encoding="utf-8", newline="") as f:
                yield f


def write_text(path: str | Path, text: str) -> Path:
    """Replace `path` by `text` (UTF-8), whole or not at all."""
    with open_replacing(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, value: object) -> Path:
    """Replace `path` by `value` as indented JSON (non-ASCII kept), whole or not at all."""
    return write_text(path, json.dumps(value, indent=1, ensure_ascii=False))


def read_json(path: str | Path, error: type[VitopicError]) -> object:
    """The JSON value in `path`, or `error` naming the file and what to do."""
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError as err:
        raise error(f"{path}: not found") from err
    except (UnicodeDecodeError, ValueError) as err:
        raise error(f"{path}: not valid JSON ({str(err).splitlines()[0]}); restore or regenerate it") from err
