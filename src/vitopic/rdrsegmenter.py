"""VnCoreNLP's RDRSegmenter (Java) in a child process of its own.

The JVM never starts inside the Python process that runs torch: an in-process JVM shares that
process's signal handlers (it uses SIGSEGV itself, and SIGTERM), which crashed long test and
training runs. The child (`python -m vitopic.rdrsegmenter`) reads one JSON list of sentences per
line on stdin and answers one JSON list of segmented sentences per line; it ends when stdin closes,
so it never outlives its parent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading


class RdrSegmenterProcess:
    """A callable `list[str] -> list[str]` backed by one child process, restarted after a fork."""

    def __init__(self, error: type[Exception]):
        self._error = error
        self._lock = threading.Lock()
        self._pid = -1
        self._proc: subprocess.Popen | None = None
        self._stderr = None

    def _start(self) -> None:
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (open as long as the child runs)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "vitopic.rdrsegmenter"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,  # Ctrl-C reaches the parent only; the child ends on EOF
        )
        self._pid = os.getpid()
        self._exchange([])  # the child answers once its JVM and model are loaded

    def _exchange(self, texts: list[str]) -> list[str]:
        proc = self._proc
        try:
            proc.stdin.write(json.dumps(texts).encode() + b"\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            proc.kill()
            proc.wait()
            self._stderr.seek(0)
            detail = self._stderr.read().decode(errors="replace").strip()[-2000:]
            self._proc = None
            raise self._error(
                f"segmenter 'rdrsegmenter' (VnCoreNLP's RDRSegmenter, Java) stopped "
                f"(exit code {proc.returncode}): {detail or 'no message'}"
            )
        return json.loads(line)

    def __call__(self, texts: list[str]) -> list[str]:
        with self._lock:
            if self._proc is None or self._pid != os.getpid():
                self._start()  # answers an empty list once the child is ready
            return self._exchange(list(texts)) if texts else []


def main() -> None:
    """The child: load the segmenter, then answer each line of stdin until it closes."""
    replies = os.fdopen(os.dup(1), "w", encoding="ascii")
    os.dup2(2, 1)  # whatever Java or a library prints goes to stderr, never into the replies
    import python_rdrsegmenter

    segment = python_rdrsegmenter.load_segmenter().tokenize
    for line in sys.stdin.buffer:
        replies.write(json.dumps([str(segment(t)) for t in json.loads(line)]) + "\n")
        replies.flush()


if __name__ == "__main__":
    main()
