"""Workflows: the whole jobs that the `vitopic` commands (and so the `training/*.py` recipes) run,
composed from components; the only code besides the CLI that sees the whole `Config`."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from vitopic.baseline import KEYWORD_SUFFIX, TfidfBaseline, keyword_metrics
from vitopic.checkpoint import METADATA_FILE, CheckpointError, not_worth_using
from vitopic.config import Config
from vitopic.data import Example, check_labels, read_examples
from vitopic.evaluation import evaluate_examples, evaluation_plot, quality_warnings, write_evaluation
from vitopic.metrics import Metrics, multilabel_metrics, tune_thresholds
from vitopic.options import Split
from vitopic.predict import TopicClassifier
from vitopic.prediction_io import printable
from vitopic.progress import announcer
from vitopic.report import training_facts, update_model_card, write_run_outputs
from vitopic.run_dir import locked
from vitopic.training import Splits, TrainResult, load_splits, process_state, train


def run_baseline(
    cfg: Config, extra: list[str] | tuple[str, ...] = (), splits: Splits | None = None
) -> dict[str, Metrics]:
    """Fit TF-IDF + LR on train (thresholds on dev); its metrics, and the keyword rules', on dev,
    test and any `extra` labeled files."""
    splits = splits or Splits.load(cfg.data, cfg.training.seed)
    labels = cfg.data.labels
    model = TfidfBaseline(labels, cfg.training.seed).fit(splits.train, splits.dev)
    named = {
        "dev": splits.dev,
        "test": splits.test,
        **{Path(path).stem: read_examples(path, labels) for path in extra},
    }
    results = {}
    for name, examples in named.items():
        if examples:
            results[name] = model.evaluate(examples)
            results[name + KEYWORD_SUFFIX] = keyword_metrics(examples, labels)
    return results


def train_and_report(
    cfg: Config, resume: bool = False, overwrite: bool = False, verbose: bool = False, quiet: bool = False
) -> Path:
    """Train, save, reload the saved checkpoint to label the showcase sentences, write the report.

    The report files land with the model, under the run's lock, before its `vitopic.json`. A model
    that loses to TF-IDF + LR on dev, or gives nearly all of dev one label set, is saved but
    flagged: the last line printed, report.md, the model card and metrics.json say so. `quiet`:
    only that last line (and "model saved to").
    """
    main = process_state().is_main_process
    say = announcer(main and not quiet)
    splits = load_splits(cfg, say)
    warnings: list[str] = []

    def report(directory: Path, result: TrainResult) -> None:
        showcase_rows = None
        if splits.showcase:
            clf = TopicClassifier.from_pretrained(directory)
            showcase_rows = evaluate_examples(clf, splits.showcase)[3]
        baseline = run_baseline(cfg, splits=splits)
        warnings.extend(quality_warnings(result.dev, result.dev_rows, baseline.get("dev")))
        sizes = {
            name: len(getattr(splits, name))
            for name in ("train", "dev", "test", "showcase")
            if getattr(splits, name)
        }
        facts = training_facts(cfg.training, cfg.model, result, sizes)
        write_run_outputs(directory, result, facts, showcase_rows, baseline=baseline, warnings=warnings)

    result = train(
        cfg, resume=resume, splits=splits, overwrite=overwrite, verbose=verbose, report=report, quiet=quiet
    )
    for name, metrics in (("dev", result.dev), ("test", result.test)):
        if metrics:
            say(metrics.format(name))
    if main:
        print(f"model saved to {result.output_dir}")
        if warnings:
            print(f"WARNING: {not_worth_using(warnings)}")
    return result.output_dir


def evaluate_on_file(
    model: str,
    data: str,
    out_dir: str | None,
    batch_size: int = 32,
    split: Split = "sentence",
    errors: int = 0,
    tune: bool = False,
    save: bool = False,
    update_card: bool = False,
) -> Metrics:
    """Evaluate a checkpoint on a labeled file (JSONL, CSV or a saved dataset); print metrics,
    write JSON and plots.

    `errors`: print that many wrong predictions. `tune`: also tune thresholds on this file (and
    with `save`, write them into the local checkpoint's vitopic.json). `update_card`: add the
    result to the local checkpoint's model card.
    """
    if (save or update_card) and not Path(model).is_dir():
        raise CheckpointError(
            f"{model}: --save and --update-card change a local checkpoint directory; download it first"
        )
    examples = read_examples(data, None)  # a bad file fails before the model loads
    clf = TopicClassifier.from_pretrained(model)
    check_labels(examples, clf.labels, data)
    if tune and not clf.metadata.head.uses_thresholds:
        raise CheckpointError(f"{model}: --tune-thresholds applies to multi_label models")
    # --save and --update-card rewrite the model's files: never beside a training run or another update.
    with locked(Path(model)) if save or update_card else nullcontext():
        return _evaluate(
            clf, model, data, examples, out_dir, batch_size, split, errors, tune, save, update_card
        )


def _evaluate(
    clf: TopicClassifier,
    model: str,
    data: str,
    examples: list[Example],
    out_dir: str | None,
    batch_size: int,
    split: Split,
    errors: int,
    tune: bool,
    save: bool,
    update_card: bool,
) -> Metrics:
    name = Path(data).stem
    result, scores, targets, rows = evaluate_examples(clf, examples, batch_size, progress=True, split=split)
    print(result.format(Path(data).name))
    target = Path(out_dir) if out_dir else default_eval_dir(model)
    path = write_evaluation(target, name, clf, result, scores, targets, rows)
    print(f"wrote {path} and {evaluation_plot(target, name)}")
    wrong = [r for r in rows if set(r["predicted"]) != set(r["labels"])]
    listed = wrong[: max(errors, 0)]
    for r in listed:
        print(
            f"  [{printable(r['id'])}] gold {','.join(r['labels']) or '-'}  predicted "
            f"{','.join(r['predicted']) or '-'}  {r['scores']}  {printable(r['text'])}"
        )
    if listed and len(wrong) > len(listed):
        print(f"  ... {len(wrong) - len(listed)} more wrong predictions in {path}")
    if tune:
        cuts = tune_thresholds(scores, targets)
        retuned = multilabel_metrics(clf.metadata.head.decide(scores, cuts), targets, clf.labels)
        print(
            "thresholds tuned on this file: "
            + ", ".join(
                f"{lab} {old:.2f} -> {new:.2f}"
                for lab, old, new in zip(clf.labels, clf.thresholds, cuts, strict=True)
            )
        )
        print(retuned.format(f"{Path(data).name} at these thresholds (optimistic: tuned on it)"))
        if save:
            clf.metadata.thresholds = [float(t) for t in cuts]
            clf.metadata.save(model)
            print(f"saved the new thresholds to {Path(model) / METADATA_FILE}")
    if update_card:
        print(f"updated {update_model_card(Path(model), Path(data).name, result)}")
    return result


def default_eval_dir(model: str) -> Path:
    """Where evaluation files go by default: beside a local model, else ./eval-ORG--NAME."""
    local = Path(model)
    return local if local.is_dir() else Path("eval-" + model.replace("/", "--"))
