"""A run's output directory: who may write it, one run at a time, and how a finished model lands.

- A new run needs an empty or missing `output.dir`, a previous vitopic run of the same config, or
  `overwrite` (only over a previous vitopic run: a directory that is not one, such as a project
  root, is never written into). `resume` needs a previous run of the same config.
- A lock file stops two runs in one directory (and an evaluation's update of a model while it runs).
- The finished model and its report files (metrics.json, report.md, the card, plots) are written
  to a staging directory and moved in at the end, under the lock, `vitopic.json` last: until
  then the previous model stays complete and loadable, its stale artefacts (ONNX exports,
  evaluations, plots, trainer checkpoints) never sit beside new weights, and a loadable model
  always has its report.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from vitopic.checkpoint import (
    CT2_DIR,
    INT8_FILE,
    METADATA_FILE,
    METRICS_FILE,
    ONNX_FILE,
    SAFE_WEIGHTS,
    SHARDS,
)
from vitopic.errors import VitopicError, shown

LOCK_FILE = ".vitopic.lock"
STAGING = ".staging"
CONFIG_FILE = "config.yaml"
SPLITS_FILE = "splits.json"  # the ids of splits held out of the train file
TRAINER_DIR = "checkpoints"
# The model's own sections: a resumed or repeated run must match them (training.* may change).
SAME_RUN_SECTIONS = ("model", "data", "text")
# What a run leaves beside its checkpoint; all of it is replaced when a new model lands.
RUN_ARTEFACTS = (
    SHARDS,
    *SAFE_WEIGHTS,
    ONNX_FILE,
    INT8_FILE,
    CT2_DIR,
    METRICS_FILE,
    "report.md",
    "README.md",
    "plots",
    "eval-*.json",
    SPLITS_FILE,
    "training_args.bin",
)


class RunDirError(VitopicError, ValueError):
    """`output.dir` cannot be used as asked; the message says what to do."""


def _previous_config(out: Path) -> dict | None:
    """The config of the run in `out`: the one in progress (trainer dir), else the finished one."""
    in_progress, finished = out / TRAINER_DIR / CONFIG_FILE, out / CONFIG_FILE
    if in_progress.is_file():
        path = in_progress
    elif finished.is_file() and (out / METADATA_FILE).is_file():
        path = finished
    else:
        return None
    try:
        return yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError:
        return None


def check_output_dir(out: Path, config: dict, resume: bool, overwrite: bool) -> None:
    """Raise RunDirError unless a run with `config` may write into `out` (see the module doc)."""
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output.dir {out} is a file, not a directory")
    entries = [p for p in out.iterdir() if not p.name.startswith(LOCK_FILE)] if out.is_dir() else []
    previous = _previous_config(out) if entries else None
    same = previous is not None and all(previous.get(k) == config.get(k) for k in SAME_RUN_SECTIONS)
    if resume:
        if previous is None:
            raise RunDirError(f"--resume: no checkpoint to resume from: {out} holds no previous vitopic run")
        if not same:
            changed = [k for k in SAME_RUN_SECTIONS if previous.get(k) != config.get(k)]
            raise RunDirError(
                f"--resume: the config's {', '.join(changed)} section(s) differ from "
                f"the run in {out}; resume with its {out / CONFIG_FILE}"
            )
        return
    if not entries or same:
        return
    if previous is None:
        raise RunDirError(
            f"output.dir {out} is not empty and holds no vitopic run; choose an empty or new directory"
        )
    if not overwrite:
        raise RunDirError(
            f"output.dir {out} holds a vitopic run of another config; pass "
            "--overwrite to replace it, or choose another output.dir"
        )


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold `out/.vitopic.lock` for the duration. The lock appears with this process's id already
    in it (written under a unique name, then hard-linked into place), so a lock is never seen
    empty while its run starts; a lock naming no process is refused, one whose process is gone
    is taken over."""
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_FILE
    fd, name = tempfile.mkstemp(prefix=f"{LOCK_FILE}.", dir=out)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        for _ in range(2):
            try:
                os.link(name, lock)
                break
            except FileExistsError:
                _check_holder(out, lock)
                lock.unlink(missing_ok=True)
        else:
            raise RunDirError(f"cannot lock {out}: another process keeps taking {lock}")
    finally:
        os.unlink(name)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _check_holder(out: Path, lock: Path) -> None:
    """RunDirError unless the lock's process is gone (then the lock may be taken over)."""
    try:
        text = lock.read_text().strip()
    except FileNotFoundError:
        return
    except OSError as err:
        text = f"unreadable: {err.strerror}"
    if not text.isdigit():
        raise RunDirError(
            f"{out} is locked by {lock}, which names no process ({shown(text)}); if no vitopic "
            "run or evaluation is using the directory, remove that file"
        )
    pid = int(text)
    if _alive(pid):
        raise RunDirError(
            f"{out} is in use by another run (process {pid}); wait for it, or remove {lock} "
            "if that process is gone"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_previous_run(out: Path) -> None:
    """At the start of a fresh run: the old run's trainer checkpoints can never be resumed now."""
    shutil.rmtree(out / TRAINER_DIR, ignore_errors=True)


def publish(out: Path, staging: Path) -> None:
    """Replace the previous model in `out` by the finished one in `staging` (its weights, its
    report files and its `vitopic.json`): the old `vitopic.json` goes first (so the directory
    never looks finished with mixed files), then every old artefact, then the new files, and the
    new `vitopic.json` last, so a kill at any moment leaves no finished-looking model without
    its report."""
    (out / METADATA_FILE).unlink(missing_ok=True)
    for pattern in RUN_ARTEFACTS:
        for path in out.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in staging.iterdir():
        if path.name != METADATA_FILE:
            os.replace(path, out / path.name)
    os.replace(staging / METADATA_FILE, out / METADATA_FILE)
    staging.rmdir()
