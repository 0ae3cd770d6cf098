"""What a training run writes beside its checkpoint: metrics.json, report.md, plots, model card."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vitopic.baseline import baseline_label, format_baselines, shown_baselines
from vitopic.checkpoint import METRICS_FILE, QUALITY_WARNINGS, CheckpointError, Metadata, not_worth_using
from vitopic.config import ModelConfig, TrainingConfig, load_config
from vitopic.files import read_json, write_json, write_text
from vitopic.metrics import Metrics
from vitopic.modelcard import render_card, table_cell, training_data
from vitopic.plots import plot_losses, plot_pr_curves
from vitopic.run_dir import CONFIG_FILE
from vitopic.training import TrainResult

EVALUATIONS = "evaluations"  # metrics.json key: `vitopic evaluate --update-card` results by file
TRAINING = "training"  # metrics.json key: hyper-parameters, data sizes, versions (for the card)


def write_run_outputs(
    out: Path,
    result: TrainResult,
    training: dict,
    showcase_rows: list[dict] | None,
    baseline: dict[str, Metrics] | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Path]:
    """Write the run's report files beside the saved model in `out` (the run's staging directory,
    published with them: `vitopic.training.train`'s `report`); return their paths. `training`:
    what the card states about the run (`training_facts`), to which the facts about its data
    (`modelcard.training_data`) are added from the run's config.yaml in `out`."""
    meta = Metadata.load(out)
    data = load_config(out / CONFIG_FILE, check_files=False).data
    training = {**training, "data": training_data(data, result.dev_rows, meta.segmenter)}
    name = result.output_dir.name
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    results = {"dev": result.dev, **({"test": result.test} if result.test else {})}
    paths = {
        "pr_curves": plot_pr_curves(
            result.dev_scores,
            result.dev_targets,
            meta.labels,
            np.asarray(result.thresholds),
            plots / "pr-dev.png",
            "precision-recall on dev",
        ),
        "losses": plot_losses(result.log_history, plots / "loss.png", result.best_step),
    }
    metrics = {
        "thresholds": dict(zip(meta.labels, meta.thresholds, strict=False)),
        **_as_json(results),
        "showcase_predictions": showcase_rows or [],
        "baseline": None if baseline is None else _as_json(baseline),
        QUALITY_WARNINGS: list(warnings),
        TRAINING: training,
    }
    paths["metrics"] = write_json(out / METRICS_FILE, metrics)

    alarm = _alarm(warnings)
    lines = [
        f"# Training report: {name}",
        "",
        *([alarm, ""] if alarm else []),
        f"Base model: `{meta.base_model or 'from scratch (PhoBERT-shaped)'}`, "
        f"mode `{meta.mode}`, segmenter `{meta.segmenter}`.",
        "",
        "Thresholds (tuned on dev): "
        + ", ".join(f"{lab} {t:.2f}" for lab, t in zip(meta.labels, meta.thresholds, strict=False)),
        "",
        "```",
    ]
    lines += [r.format(split) for split, r in results.items()]
    if baseline:
        lines += format_baselines(baseline, "baseline ")
    lines += ["```", "", "![precision-recall](plots/pr-dev.png)", "", "![losses](plots/loss.png)"]
    if showcase_rows:
        lines += ["", "## Showcase sentences", "", "| text | gold | predicted |", "|---|---|---|"]
        lines += [
            f"| {table_cell(r['text'])} | {', '.join(r['labels'])} | {', '.join(r['predicted'])} |"
            for r in showcase_rows
        ]
    paths["report"] = write_text(out / "report.md", "\n".join(lines) + "\n")
    paths["card"] = _write_card(out, name, meta, results, baseline, warnings, training)
    return paths


def training_facts(
    t: TrainingConfig, m: ModelConfig, result: TrainResult, data_sizes: dict[str, int] | None
) -> dict:
    """What the card states about a run: hyper-parameters, data sizes, steps, versions, license."""
    hyper = {
        key: getattr(t, key)
        for key in (
            "learning_rate",
            "batch_size",
            "epochs",
            "max_steps",
            "warmup_ratio",
            "weight_decay",
            "early_stopping_patience",
            "pos_weight",
            "bf16",
            "seed",
        )
    }
    if not m.name_or_path:
        hyper.update(
            {
                f"model.{key}": getattr(m, key)
                for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
            }
        )
    versions = {
        name: importlib.metadata.version(name)
        for name in ("vitopic", "transformers", "torch", "datasets", "tokenizers")
    }
    return {
        "hyperparameters": hyper,
        "data_sizes": data_sizes or {},
        "steps": result.steps,
        "best_step": result.best_step,
        "versions": versions,
        "license": m.license,
    }


def _alarm(warnings: Sequence[str]) -> str:
    return f"**Warning: {not_worth_using(list(warnings))}.**" if warnings else ""


def _write_card(
    out: Path,
    name: str,
    meta: Metadata,
    results: dict[str, Metrics],
    baseline: dict[str, Metrics] | None,
    warnings: Sequence[str],
    training: dict | None,
) -> Path:
    extra = _alarm(warnings) + "\n\n" if warnings else ""
    if baseline:
        shown, note = shown_baselines(baseline)
        scores = [f"{baseline_label(key)} {r.macro_f1:.3f}" for key, r in shown.items()]
        extra += (
            "Baselines on the same splits (macro-F1): " + "; ".join(scores + ([note] if note else [])) + "."
        )
    return write_text(
        out / "README.md",
        render_card(
            meta,
            results,
            name,
            extra_metrics=extra,
            training=training,
            license_override=(training or {}).get("license"),
        ),
    )


def update_model_card(out: Path, name: str, result: Metrics) -> Path:
    """Record an evaluation on file `name` in metrics.json (`evaluations`) and the model card
    (the card's metrics rebuilt from metrics.json). The training run's own rows stay: an
    evaluation named like one of them is shown as `NAME (evaluated)`. A directory without the
    training run's metrics.json is refused (its card would lose the run's results and warnings)."""
    metrics_path = out / METRICS_FILE
    if not metrics_path.is_file():
        raise CheckpointError(
            f"{out}: no {METRICS_FILE} (the training run's results and quality warnings); "
            "--update-card adds to them: retrain the model, or evaluate without --update-card"
        )
    metrics = read_json(metrics_path, CheckpointError)
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{metrics_path}: not a JSON object; restore or regenerate it")
    metrics.setdefault(EVALUATIONS, {})[name] = result.to_dict()
    write_json(metrics_path, metrics)
    results = {split: metrics[split] for split in ("dev", "test") if metrics.get(split)}
    evaluated = {
        f"{key} (evaluated)" if key in results else key: r for key, r in metrics[EVALUATIONS].items()
    }
    return _write_card(
        out,
        out.name,
        Metadata.load(out),
        _from_json({**results, **evaluated}),
        _from_json(metrics.get("baseline") or {}),
        metrics.get(QUALITY_WARNINGS, ()),
        metrics.get(TRAINING),
    )


def _as_json(results: dict[str, Metrics]) -> dict[str, dict]:
    """Metrics by name as metrics.json holds them."""
    return {name: r.to_dict() for name, r in results.items()}


def _from_json(results: dict[str, dict]) -> dict[str, Metrics]:
    """Metrics by name read back from metrics.json."""
    return {name: Metrics.from_dict(r) for name, r in results.items()}
