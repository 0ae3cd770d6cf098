"""Fine-tuning: config -> data -> tokenizer -> model -> Trainer -> thresholds -> checkpoint."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import PartialState
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PreTrainedTokenizerBase,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as transformers_logging

from vitopic.base_model import BaseModel, fetch_base_model
from vitopic.checkpoint import Metadata
from vitopic.config import Config, ConfigError, DataConfig, TrainingConfig, save_config
from vitopic.data import DataError, Example, multi_hot, read_examples
from vitopic.errors import VitopicError
from vitopic.evaluation import evaluate_examples
from vitopic.heads import Head
from vitopic.metrics import Metrics, multilabel_metrics, tune_thresholds
from vitopic.modeling import build_model
from vitopic.predict import TopicClassifier, TorchRunner
from vitopic.run_dir import (
    CONFIG_FILE,
    STAGING,
    TRAINER_DIR,
    RunDirError,
    check_output_dir,
    clear_previous_run,
    locked,
    publish,
)
from vitopic.text import prepare
from vitopic.tokenizer import phobert_tokenizer

BEST_METRIC = "macro_f1_tuned"  # dev macro-F1 at thresholds tuned on that evaluation
MIN_TRAIN_EXAMPLES = 10


@dataclass
class Splits:
    """The labeled files named by the config: the splits, and the showcase sentences (test and
    showcase are optional)."""

    train: list[Example]
    dev: list[Example]
    test: list[Example] | None
    showcase: list[Example] | None

    @classmethod
    def load(cls, data: DataConfig) -> Splits:
        """Read the split files `data` names (with its labels) and check them."""

        def read(name: str | None) -> list[Example] | None:
            return read_examples(data.path(name), data.labels) if name else None

        splits = cls(
            read(data.train_file), read(data.dev_file), read(data.test_file), read(data.showcase_file)
        )
        splits.check(data)
        return splits

    def check(self, data: DataConfig) -> None:
        """Enough data to learn from: DataError naming the file otherwise, before any training."""
        train_path = data.path(data.train_file)
        if len(self.train) < MIN_TRAIN_EXAMPLES:
            raise DataError(
                f"{train_path}: {len(self.train)} example(s); training needs at least {MIN_TRAIN_EXAMPLES}"
            )
        counts = multi_hot(self.train, data.labels).sum(0)
        missing = [lab for lab, n in zip(data.labels, counts, strict=True) if not n]
        if missing:
            raise DataError(
                f"{train_path}: no example of label(s) {missing}; the model cannot "
                "learn a label it never sees"
            )


class TopicTrainer(Trainer):
    """`Trainer` with an optional per-label `pos_weight` in the multi-label BCE loss."""

    def __init__(self, *args, pos_weight: torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pos_weight = pos_weight
        # RoBERTa's forward takes **kwargs, so Trainer assumes its loss is already normalised over
        # the accumulated batches and does not divide it: with gradient accumulation the step
        # would be N times too large. Neither loss here uses num_items_in_batch: let Trainer divide.
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.pos_weight is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            outputs.logits,
            labels.to(outputs.logits.dtype),
            pos_weight=self.pos_weight.to(outputs.logits.device),
        )
        return (loss, outputs) if return_outputs else loss


class TrainingDivergedError(VitopicError, RuntimeError):
    """The training loss became NaN or infinite; no model is saved."""


class StopOnNonFiniteLoss(TrainerCallback):
    """End the run with a clear error as soon as a logged training loss is not finite."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDivergedError(
                f"training loss became {loss} at step {state.global_step}; nothing was saved. "
                "Lower training.learning_rate or try training.bf16=false"
            )


class EvaluationLog(TrainerCallback):
    """One readable line per evaluation (step, epoch, losses, dev macro-F1, time), in place of
    Trainer's raw dicts and progress bars (`verbose` keeps those)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.loss = time.monotonic(), None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        self.loss = logs.get("loss", self.loss)
        tuned = logs.get(f"eval_{BEST_METRIC}")
        if tuned is None or not state.is_world_process_zero:
            return
        loss = "-" if self.loss is None else f"{self.loss:.4f}"  # none logged yet
        print(
            f"step {state.global_step:>5}/{state.max_steps}  epoch {state.epoch or 0:5.2f}  "
            f"loss {loss:>6}  dev loss {logs.get('eval_loss', float('nan')):.4f}  "
            f"dev macro-F1 {tuned:.3f} (tuned thresholds; "
            f"{logs.get('eval_macro_f1_at_0.5', float('nan')):.3f} at 0.5)  "
            f"{time.monotonic() - self.start:5.0f} s",
            flush=True,
        )


def pos_weight_from(targets: np.ndarray) -> torch.Tensor:
    """negatives / positives for each label (1 where a label has no positives)."""
    positives = targets.sum(0)
    negatives = len(targets) - positives
    return torch.tensor(
        np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0), dtype=torch.float32
    )


def encode(
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    targets: np.ndarray,
    head: Head,
    max_length: int,
) -> datasets.Dataset:
    """Tokenised dataset (truncated to `max_length`) with `head`'s training targets as labels."""
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return datasets.Dataset.from_dict({**enc, "labels": head.targets(targets)})


def _compute_metrics(labels: list[str], head: Head):
    """Trainer's per-evaluation metrics on dev: macro-F1 at a fixed 0.5 threshold and at thresholds
    tuned on this evaluation (what the final model will use); the latter selects the best model."""

    def compute(eval_pred) -> dict[str, float]:
        scores = head.probabilities(eval_pred.predictions)
        refs = head.references(eval_pred.label_ids, len(labels))
        fixed = multilabel_metrics(head.decide(scores, np.full(len(labels), 0.5)), refs, labels)
        cuts = (
            tune_thresholds(head.label_scores(scores), refs)
            if head.uses_thresholds
            else np.full(len(labels), 0.5)
        )
        tuned = multilabel_metrics(head.decide(scores, cuts), refs, labels)
        return {
            "macro_f1_at_0.5": fixed.macro_f1,
            BEST_METRIC: tuned.macro_f1,
            "micro_f1_tuned": tuned.micro_f1,
            **{f"{lab}_f1_tuned": v.f1 for lab, v in tuned.per_label.items()},
        }

    return compute


def training_arguments(t: TrainingConfig, run_dir: str | Path, verbose: bool = False) -> TrainingArguments:
    """Trainer's arguments from the `training` section; its checkpoints go under `run_dir`."""
    every = "steps" if t.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(Path(run_dir) / TRAINER_DIR),
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        seed=t.seed,
        data_seed=t.seed,
        bf16=t.bf16,
        fp16=t.fp16,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        lr_scheduler_type=t.lr_scheduler_type,
        max_grad_norm=t.max_grad_norm,
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        torch_compile=t.torch_compile,
        eval_strategy=every,
        save_strategy=every,
        eval_steps=t.eval_steps,
        save_steps=t.eval_steps,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_nan_inf_filter=False,  # a NaN loss must show, so StopOnNonFiniteLoss can stop the run
        save_total_limit=t.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model=BEST_METRIC,
        greater_is_better=True,
        report_to=t.report_to,
        disable_tqdm=not verbose,
        dataloader_num_workers=t.dataloader_num_workers,
        ddp_find_unused_parameters=False,  # every parameter is used: no extra pass, no warning
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),
    )


def make_tokenizer(base: BaseModel | None, max_length: int) -> PreTrainedTokenizerBase:
    """The base model's tokenizer; PhoBERT's own (shipped with vitopic) for a model from scratch."""
    return base.tokenizer(max_length) if base is not None else phobert_tokenizer(max_length=max_length)


@dataclass
class TrainResult:
    output_dir: Path
    thresholds: list[float]
    dev: Metrics
    test: Metrics | None
    log_history: list[dict]
    dev_scores: np.ndarray
    dev_targets: np.ndarray
    dev_rows: list[dict]  # per-sentence predictions, as `vitopic evaluate` writes them
    steps: int = 0  # optimiser steps taken
    best_step: int | None = None  # the checkpoint kept (best dev macro-F1 at tuned thresholds)


Report = Callable[[Path, TrainResult], None]  # writes a run's report files into the given directory


def process_state() -> PartialState:
    """This process's place in a (torchrun / accelerate) launch. On a CPU, accelerate sees the
    launch only when told `cpu=True`, as Trainer's `use_cpu` does: without it every rank would
    believe it is the main process, and all would write."""
    return PartialState(cpu=not torch.cuda.is_available())


def train(
    cfg: Config,
    resume: bool = False,
    splits: Splits | None = None,
    overwrite: bool = False,
    verbose: bool = False,
    report: Report | None = None,
) -> TrainResult:
    """Fine-tune per `cfg`, tune thresholds on dev, and save a checkpoint into `output.dir`.

    Every process computes; only the main process writes, holding the directory's lock. The
    finished model replaces the previous one only at the end (`vitopic.json` last): a run that
    fails at any point leaves the previous model as it was (see `vitopic.run_dir`). `report`
    writes the run's report files beside the saved model before it lands, in the main process.
    """
    if cfg.training.fp16 and not torch.cuda.is_available():
        raise ConfigError(
            cfg.output.dir,
            "training.fp16",
            "needs a CUDA GPU, and none is visible here; on a CPU use training.bf16=true or neither",
        )
    state = process_state()
    out = Path(cfg.output.dir)
    if state.is_main_process:  # the one writer checks; other ranks would see its lock file
        check_output_dir(out, cfg.to_dict(), resume, overwrite)
    checkpoint = _last_checkpoint(out) if resume else None
    bars = transformers_logging.is_progress_bar_enabled()
    if not verbose:
        transformers_logging.disable_progress_bar()  # "Writing model shards" at every save
    try:
        with locked(out) if state.is_main_process else nullcontext():
            return _train(cfg, state, out, checkpoint, splits or Splits.load(cfg.data), verbose, report)
    finally:
        if bars:
            transformers_logging.enable_progress_bar()


def _train(
    cfg: Config,
    state: PartialState,
    out: Path,
    checkpoint: str | None,
    splits: Splits,
    verbose: bool,
    report: Report | None,
) -> TrainResult:
    labels, head = cfg.data.labels, cfg.model.head
    base = fetch_base_model(cfg.model.name_or_path, cfg.model.revision) if cfg.model.name_or_path else None
    texts = {
        name: prepare([ex.text for ex in getattr(splits, name)], cfg.text.segmenter)
        for name in ("train", "dev")
    }
    targets = {name: multi_hot(getattr(splits, name), labels) for name in texts}
    tokenizer = make_tokenizer(base, cfg.text.max_length)
    model = build_model(cfg.model, labels, cfg.training.seed, tokenizer, base)
    model.config.tokenizer_class = "PhobertTokenizer"
    data = {name: encode(tokenizer, texts[name], targets[name], head, cfg.text.max_length) for name in texts}
    use_pos_weight = cfg.training.pos_weight and head.takes_pos_weight
    callbacks: list[TrainerCallback] = [StopOnNonFiniteLoss()]
    if not verbose:
        callbacks.append(EvaluationLog())
    if cfg.training.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(cfg.training.early_stopping_patience))
    trainer = TopicTrainer(
        model=model,
        args=training_arguments(cfg.training, out, verbose),
        train_dataset=data["train"],
        eval_dataset=data["dev"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_compute_metrics(labels, head),
        callbacks=callbacks,
        pos_weight=pos_weight_from(targets["train"]) if use_pos_weight else None,
    )
    if not verbose:
        trainer.remove_callback(PrinterCallback)  # raw dicts; EvaluationLog prints instead
    if state.is_main_process:
        if checkpoint:
            print(f"resuming from {checkpoint}")
        else:
            clear_previous_run(out)
        (out / TRAINER_DIR).mkdir(exist_ok=True)
        save_config(cfg, out / TRAINER_DIR / CONFIG_FILE)  # the run in progress, for --resume
    trainer.train(resume_from_checkpoint=checkpoint)

    metadata = Metadata(
        labels=list(labels),
        mode=head.mode,
        segmenter=cfg.text.segmenter,
        max_length=cfg.text.max_length,
        thresholds=head.default_thresholds(len(labels)),
        base_model=cfg.model.name_or_path,
        base_revision=cfg.model.revision,
    )
    clf = TopicClassifier(TorchRunner(trainer.model, trainer.model.device, "torch"), tokenizer, metadata)
    if head.uses_thresholds:  # tuned on the scores `vitopic evaluate` will see
        dev_scores = evaluate_examples(clf, splits.dev)[1]
        metadata.thresholds = [float(t) for t in tune_thresholds(dev_scores, targets["dev"])]
    dev, dev_scores, _, dev_rows = evaluate_examples(clf, splits.dev)
    test = evaluate_examples(clf, splits.test)[0] if splits.test else None
    result = TrainResult(
        out,
        list(metadata.thresholds),
        dev,
        test,
        trainer.state.log_history,
        dev_scores,
        targets["dev"],
        dev_rows,
        trainer.state.global_step,
        trainer.state.best_global_step,
    )
    staging = out / STAGING
    if state.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # left by a run killed while saving
    trainer.save_model(str(staging))  # weights + tokenizer files; main process only
    if state.is_main_process:
        (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.yaml says all
        save_config(cfg, staging / CONFIG_FILE)
        metadata.save(staging)
        if report:
            report(staging, result)
        publish(out, staging)  # vitopic.json last
    state.wait_for_everyone()
    return result


def _last_checkpoint(out: Path) -> str:
    """The newest complete `checkpoint-N` (trainer_state.json is written last); a clear error if none.

    A checkpoint cut short by a kill lacks trainer_state.json and is skipped.
    """
    candidates = sorted(
        (p for p in (out / TRAINER_DIR).glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if not candidates:
        raise RunDirError(f"--resume: no checkpoint to resume from in {out / TRAINER_DIR}")
    return str(candidates[-1])
