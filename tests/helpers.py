"""What the tests share besides fixtures: paths, the label set, quick configs, checkpoint edits."""

import atexit
import contextlib
import functools
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

from vitopic.labels import DEFAULT_LABELS

LABELS = list(DEFAULT_LABELS)
ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "tiny.yaml"
DATA = ROOT / "corpus"
HANG = 3600  # seconds: a guard against a hung subprocess, never a speed limit (machines are slow)
VITOPIC = [sys.executable, "-m", "vitopic.cli"]  # the CLI as a real process (signals, servers)
VITOPIC_SCRIPT = Path(sys.executable).with_name("vitopic")  # the installed console script


class Ran(NamedTuple):
    code: int
    out: str
    err: str


def run_cli(*argv: str, stdin: str = "") -> Ran:
    """`vitopic ARGV` in this process, as the console script runs it: the exit code (argparse's
    SystemExit too), what it printed to stdout and stderr, with `stdin` as its input."""
    from vitopic.cli import main

    out, err, old_stdin = io.StringIO(), io.StringIO(), sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    finally:
        sys.stdin = old_stdin
    return Ran(code, out.getvalue(), err.getvalue())


def tiny_overrides(out: Path, *extra: str) -> list[str]:
    """Overrides that keep the tiny config quick in tests (a narrower model, fewer epochs) while
    still learning the topics; the shipped config itself is trained by the slow tests."""
    return [
        f"data.dir={DATA}",
        f"output.dir={out}",
        "training.epochs=4",
        "training.max_steps=700",
        "training.eval_steps=350",
        "model.hidden_size=64",
        "model.num_attention_heads=2",
        "model.intermediate_size=128",
        *extra,
    ]


QUICK = ("training.max_steps=60", "training.eval_steps=30", "training.early_stopping_patience=null")


def subset(source: Path, target: Path, n: int) -> None:
    """`n` rows spread over `source` (so every label is present), written to `target`."""
    lines = source.read_text("utf-8").splitlines()
    target.write_text("\n".join(lines[:: max(len(lines) // n, 1)][:n]) + "\n", "utf-8")


def small_corpus(root: Path, train: int, dev: int, test: int = 20) -> Path:
    """A corpus directory of `train`/`dev`/`test` rows spread over the shipped splits, at `root`."""
    root.mkdir(parents=True)
    for split, n in (("train", train), ("dev", dev), ("test", test), ("showcase", 8)):
        subset(DATA / f"{split}.jsonl", root / f"{split}.jsonl", n)
    return root


@functools.cache
def quick_corpus() -> Path:
    """The small corpus of the quick runs (400 train, 100 dev and test rows), once per process:
    what a run does with its data does not need 7,000 sentences; the full corpus is trained on by
    the session's `trained_dir` and the slow tests of the shipped configs."""
    tmp = tempfile.mkdtemp(prefix="vitopic-tests-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return small_corpus(Path(tmp) / "corpus", train=400, dev=100, test=100)


def quick(out: Path, *extra: str):
    """The tiny config for a short run (60 steps, evaluated twice) on `quick_corpus()` into `out`."""
    from vitopic.config import load_config

    return load_config(TINY, tiny_overrides(out, *QUICK, f"data.dir={quick_corpus()}", *extra))


def edit_json(path: Path, **changes) -> None:
    """Set top-level keys of a JSON file (a checkpoint's config.json, vitopic.json, ...)."""
    data = json.loads(path.read_text("utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), "utf-8")


def edit_weights(directory: Path, change) -> None:
    """Rewrite a checkpoint's model.safetensors after `change(tensors)` mutates the dict."""
    from safetensors.torch import load_file, save_file

    path = directory / "model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def place_in_hub_cache(model_dir: Path, cache: Path, repo_id: str) -> str:
    """Lay a checkpoint out as huggingface_hub's cache does after a real download."""
    from hub_replica import place_snapshot

    from vitopic.hub import checkpoint_files

    place_snapshot(cache, repo_id, {p.name: p.read_bytes() for p in checkpoint_files(model_dir)})
    return repo_id


def spy_on_pos_weight(patch) -> list:
    """Record the `pos_weight` of every BCE loss computed while `patch` (a MonkeyPatch) holds."""
    import torch

    seen: list = []
    real = torch.nn.functional.binary_cross_entropy_with_logits

    def spy(*args, pos_weight=None, **kwargs):
        seen.append(pos_weight)
        return real(*args, pos_weight=pos_weight, **kwargs)

    patch.setattr(torch.nn.functional, "binary_cross_entropy_with_logits", spy)
    return seen
