"""Signs of life for long work: a progress bar on a terminal; elsewhere (CI, logs, nohup) a plain
line every PLAIN_EVERY_S seconds with the count, the rate and the time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from tqdm.auto import tqdm

PLAIN_EVERY_S = 30.0


Say = Callable[[str], None]  # prints one line of what a command is doing


def _say(line: str) -> None:
    print(line, flush=True)


def silent(line: str) -> None:
    """Says nothing (`--quiet`, or a process other than the main one)."""


def announcer(enabled: bool) -> Say:
    """`print` with a flush (each line shows at once, also in a log file), or `silent`."""
    return _say if enabled else silent


def duration(seconds: float) -> str:
    """`1h02m`, `3m05s` or `12s`."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Counts `unit`s done of `total` (None: unknown) on stderr: a tqdm bar if stderr is a
    terminal, else a plain flushed line every PLAIN_EVERY_S seconds; nothing unless `enabled`."""

    def __init__(self, desc: str, total: int | None, unit: str, enabled: bool = True, initial: int = 0):
        self.stream: TextIO = sys.stderr
        self.desc, self.total, self.unit, self.done = desc, total, unit, initial
        terminal = enabled and self.stream.isatty()
        self.bar = (
            tqdm(desc=desc, total=total, unit=f" {unit}", initial=initial, file=self.stream)
            if terminal
            else None
        )
        self.plain = enabled and not terminal
        self.start = self.last = time.monotonic()
        self.initial = initial

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.plain and time.monotonic() - self.last >= PLAIN_EVERY_S:
            self.last = time.monotonic()
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """`desc: 120/700 steps (17%), 3.20 steps/s, 2m elapsed, 3m01s left`."""
        elapsed = time.monotonic() - self.start
        rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
        count = (
            f"{self.done}/{self.total} {self.unit} ({self.done / self.total:.0%})"
            if self.total
            else f"{self.done} {self.unit}"
        )
        left = f", {duration((self.total - self.done) / rate)} left" if self.total and rate else ""
        return f"{self.desc}: {count}, {rate:.2f} {self.unit}/s, {duration(elapsed)} elapsed{left}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
