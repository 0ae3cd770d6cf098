"""Quality over seeds: train a config K times and compare it with keyword rules and TF-IDF + LR.

    python benchmarks/quality.py [--config configs/tiny.yaml] [--seeds 42 1 2 3 4]
                                 [--eval FILE.jsonl ...] [key.sub=value ...]

Prints one markdown table: macro-F1 and per-label F1 on the config's test split and on each
`--eval` file, per seed, with mean, min and standard deviation, beside the keyword rules and
TF-IDF + LR on the same files; and the training time of each seed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import REPO, machine_info, table

from vitopic.baseline import KEYWORD_SUFFIX
from vitopic.config import load_config
from vitopic.data import read_jsonl
from vitopic.evaluation import evaluate_examples
from vitopic.metrics import Metrics
from vitopic.predict import TopicClassifier
from vitopic.training import Splits, train
from vitopic.workflows import run_baseline


def cells(result: Metrics, labels: list[str]) -> list[float]:
    return [result.macro_f1, *(result.per_label[lab].f1 for lab in labels)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(REPO / "configs" / "tiny.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--eval", action="append", default=[], metavar="FILE.jsonl")
    parser.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    args = parser.parse_args()

    cfg = load_config(args.config, args.overrides)
    labels = cfg.data.labels
    splits = Splits.load(cfg.data)
    named = {"test": splits.test, **{Path(p).stem: read_jsonl(p, labels) for p in args.eval}}
    baseline = run_baseline(cfg, args.eval, splits)
    rows: dict[str, list[float]] = {
        "keyword rules": [v for name in named for v in cells(baseline[name + KEYWORD_SUFFIX], labels)],
        "TF-IDF + LR": [v for name in named for v in cells(baseline[name], labels)],
    }
    seconds = {}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            run_cfg = load_config(
                args.config,
                [*args.overrides, f"training.seed={seed}", f"output.dir={Path(scratch) / str(seed)}"],
            )
            start = time.perf_counter()
            result = train(run_cfg, splits=splits)
            seconds[seed] = time.perf_counter() - start
            clf = TopicClassifier.from_pretrained(result.output_dir)
            rows[f"seed {seed}"] = [
                v for examples in named.values() for v in cells(evaluate_examples(clf, examples)[0], labels)
            ]
            print(
                f"seed {seed}: trained in {seconds[seed]:.0f} s; "
                + ", ".join(
                    f"{name} macro-F1 {rows[f'seed {seed}'][i * (len(labels) + 1)]:.3f}"
                    for i, name in enumerate(named)
                ),
                flush=True,
            )
    per_seed = [rows[f"seed {s}"] for s in args.seeds]
    columns = list(zip(*per_seed, strict=True))
    rows["mean"] = [statistics.mean(c) for c in columns]
    rows["min"] = [min(c) for c in columns]
    if len(args.seeds) > 1:
        rows["std"] = [statistics.stdev(c) for c in columns]

    print(f"\n{machine_info()}")
    print(
        f"config {args.config} {' '.join(args.overrides)}; seeds {args.seeds}; training time per "
        f"seed {min(seconds.values()):.0f}-{max(seconds.values()):.0f} s\n"
    )
    headers = ["model"] + [f"{name} {col}" for name in named for col in ("macro-F1", *labels)]
    print(table(headers, [[name, *(f"{v:.3f}" for v in values)] for name, values in rows.items()]))


if __name__ == "__main__":
    main()
