"""Quality over seeds: train configs K times each and compare them with keyword rules and TF-IDF + LR.

    python benchmarks/quality.py [--config configs/mini-phobert.yaml --config configs/tiny.yaml]
                                 [--seeds 42 1 2 3 4] [--eval FILE.jsonl ...]
                                 [--few-shot 16 32 64 128 [--few-shot-seeds 3]] [key.sub=value ...]

Prints one markdown table: macro-F1 and per-label F1 on the test split and on each `--eval` file,
per config and seed, with mean, min and standard deviation, beside the keyword rules and
TF-IDF + LR on the same files (`overrides` apply to every config). With `--few-shot`, a second
table: macro-F1 when only N training sentences per label (and N without any label) are sampled
from the train split, per config and for TF-IDF + LR, mean (min) over the few-shot seeds; dev
stays whole for thresholds and model selection.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import REPO, machine_info, table

from vitopic.baseline import KEYWORD_SUFFIX, TfidfBaseline
from vitopic.config import Config, load_config
from vitopic.data import Example, read_jsonl
from vitopic.evaluation import evaluate_examples
from vitopic.metrics import Metrics
from vitopic.predict import TopicClassifier
from vitopic.training import Splits, train
from vitopic.workflows import run_baseline

FEW_SHOT_STEPS = ("training.max_steps=300", "training.eval_steps=50")  # small sets: epochs say little
# (the command line's overrides come after these, so they can change them too)


def cells(result: Metrics, labels: list[str]) -> list[float]:
    return [result.macro_f1, *(result.per_label[lab].f1 for lab in labels)]


def few_shot_sample(train: list[Example], labels: list[str], n: int, seed: int) -> list[Example]:
    """N sentences carrying each label (fewer if the split has fewer) and N carrying none."""
    rng = random.Random(seed)
    chosen: dict[int, Example] = {}
    for label in [*labels, None]:
        pool = [i for i, ex in enumerate(train) if (label in ex.labels if label else not ex.labels)]
        chosen.update((i, train[i]) for i in rng.sample(pool, min(n, len(pool))))
    return [chosen[i] for i in sorted(chosen)]


def fine_tune(
    cfg_path: str, overrides: list[str], splits: Splits, out: Path
) -> tuple[TopicClassifier, float]:
    run_cfg = load_config(cfg_path, [*overrides, f"output.dir={out}"])
    start = time.perf_counter()
    result = train(run_cfg, splits=splits)
    return TopicClassifier.from_pretrained(result.output_dir), time.perf_counter() - start


def summarise(rows: dict[str, list[float]], prefix: str, n_runs: int) -> None:
    """Mean, min and (over two runs or more) std rows of the `prefix ...` rows."""
    columns = list(zip(*(v for k, v in rows.items() if k.startswith(prefix)), strict=True))
    rows[f"{prefix}mean"] = [statistics.mean(c) for c in columns]
    rows[f"{prefix}min"] = [min(c) for c in columns]
    if n_runs > 1:
        rows[f"{prefix}std"] = [statistics.stdev(c) for c in columns]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", help="repeatable; default configs/mini-phobert.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4])
    parser.add_argument("--eval", action="append", default=[], metavar="FILE.jsonl")
    parser.add_argument("--few-shot", type=int, nargs="*", default=[], metavar="N")
    parser.add_argument("--few-shot-seeds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    args = parser.parse_args()
    configs = args.config or [str(REPO / "configs" / "mini-phobert.yaml")]

    cfg: Config = load_config(configs[0], args.overrides)
    labels = cfg.data.labels
    splits = Splits.load(cfg.data)
    named = {"test": splits.test, **{Path(p).stem: read_jsonl(p, labels) for p in args.eval}}
    baseline = run_baseline(cfg, args.eval, splits)
    rows: dict[str, list[float]] = {
        "keyword rules": [v for name in named for v in cells(baseline[name + KEYWORD_SUFFIX], labels)],
        "TF-IDF + LR": [v for name in named for v in cells(baseline[name], labels)],
    }
    seconds: dict[str, list[float]] = {}
    few: dict[str, list[list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for config in configs:
            name = Path(config).stem
            for seed in args.seeds:
                out = Path(scratch) / f"{name}-{seed}"
                clf, took = fine_tune(config, [*args.overrides, f"training.seed={seed}"], splits, out)
                seconds.setdefault(name, []).append(took)
                row = rows[f"{name} seed {seed}"] = [
                    v
                    for examples in named.values()
                    for v in cells(evaluate_examples(clf, examples)[0], labels)
                ]
                scores = ", ".join(
                    f"{e} macro-F1 {row[i * (len(labels) + 1)]:.3f}" for i, e in enumerate(named)
                )
                print(f"{name} seed {seed}: trained in {took:.0f} s; {scores}", flush=True)
            summarise(rows, f"{name} ", len(args.seeds))
        for n in args.few_shot:
            for seed in range(args.few_shot_seeds):
                small = Splits(few_shot_sample(splits.train, labels, n, seed), splits.dev, splits.test, [])
                tfidf = TfidfBaseline(labels, seed).fit(small.train, small.dev)
                few.setdefault(f"TF-IDF + LR|{n}", []).append(
                    [tfidf.evaluate(ex).macro_f1 for ex in named.values()]
                )
                for config in configs:
                    name = Path(config).stem
                    overrides = [*FEW_SHOT_STEPS, *args.overrides, f"training.seed={seed}"]
                    clf, _ = fine_tune(config, overrides, small, Path(scratch) / f"few-{name}-{n}-{seed}")
                    few.setdefault(f"{name}|{n}", []).append(
                        [evaluate_examples(clf, ex)[0].macro_f1 for ex in named.values()]
                    )
                print(f"few-shot {n} per label, seed {seed}: done", flush=True)

    print(f"\n{machine_info()}")
    times = "; ".join(f"{k} {min(v):.0f}-{max(v):.0f} s" for k, v in seconds.items())
    print(
        f"overrides {' '.join(args.overrides) or 'none'}; seeds {args.seeds}; "
        f"training time per seed: {times}\n"
    )
    headers = ["model"] + [f"{name} {col}" for name in named for col in ("macro-F1", *labels)]
    print(table(headers, [[name, *(f"{v:.3f}" for v in values)] for name, values in rows.items()]))
    if few:
        models = list(dict.fromkeys(key.split("|")[0] for key in few))
        print(
            f"\nFew-shot macro-F1, mean (min) over {args.few_shot_seeds} samples; N sentences per label "
            f"and N without one; {' '.join(FEW_SHOT_STEPS)}\n"
        )
        headers = ["model", *(f"{name} N={n}" for name in named for n in args.few_shot)]
        body = []
        for model in models:
            cols = []
            for i, _ in enumerate(named):
                for n in args.few_shot:
                    values = [run[i] for run in few[f"{model}|{n}"]]
                    cols.append(f"{statistics.mean(values):.3f} ({min(values):.3f})")
            body.append([model, *cols])
        print(table(headers, body))


if __name__ == "__main__":
    main()
