"""Fine-tuning: config -> data -> tokenizer -> model -> Trainer -> thresholds -> checkpoint."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from vitopic.data import DataError, Example, Problems, hold_out, multi_hot, read_examples
from vitopic.errors import VitopicError
from vitopic.evaluation import evaluate_examples
from vitopic.files import write_json
from vitopic.heads import Head
from vitopic.metrics import Metrics, multilabel_metrics, tune_thresholds
from vitopic.modeling import build_model
from vitopic.predict import TopicClassifier, TorchRunner
from vitopic.progress import Progress, Say, announcer, silent
from vitopic.run_dir import (
    CONFIG_FILE,
    SPLITS_FILE,
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
    showcase are optional). `held_out`: what splits.json records when dev or test were held out
    of the train file (its name, the seed, the shares and each held-out split's ids)."""

    train: list[Example]
    dev: list[Example]
    test: list[Example] | None
    showcase: list[Example] | None
    held_out: dict[str, Any] | None = None

    @classmethod
    def load(cls, data: DataConfig, seed: int = TrainingConfig.seed) -> Splits:
        """Read the split files `data` names (with its labels; every bad row of every file at
        once), hold out of train the splits whose file is null (`data.held_out`, by `seed`), and
        check them."""
        problems = Problems()

        def read(name: str | None) -> list[Example] | None:
            try:
                return read_examples(data.path(name), data.labels) if name else None
            except DataError as err:
                problems.add(err)
                return None

        files = {key: read(getattr(data, key)) for key in data.FILES}
        problems.raise_any()
        train, parts = hold_out(files["train_file"] or [], data.held_out, seed)
        splits = cls(
            train,
            parts.get("dev", files["dev_file"] or []),
            parts.get("test", files["test_file"]),
            files["showcase_file"],
        )
        if parts:
            splits.held_out = {
                "train_file": str(data.path(data.train_file)),
                "seed": seed,
                "shares": data.held_out,
                **{name: [ex.id for ex in part] for name, part in parts.items()},
            }
        splits.check(data)
        return splits

    def describe(self, data: DataConfig) -> str:
        """The banner's data line: each split's size (and where a held-out one came from)."""
        sizes = []
        for name in ("train", "dev", "test", "showcase"):
            part = getattr(self, name)
            if part is not None:
                share = data.held_out.get(name) if self.held_out else None
                origin = (
                    f" ({share:.0%} of {data.train_file}, stratified, seed {self.held_out['seed']})"
                    if share
                    else ""
                )
                sizes.append(f"{name} {len(part)}{origin}")
        saved = f"; the held-out ids go to {SPLITS_FILE}" if self.held_out else ""
        return f"data: {', '.join(sizes)}{saved}; labels {', '.join(data.labels)}"

    def check(self, data: DataConfig) -> None:
        """Enough data to learn from: DataError naming the file otherwise, before any training."""
        train_path = data.path(data.train_file)
        for name in data.held_out if self.held_out else ():
            if not getattr(self, name):
                raise DataError(
                    f"{train_path}: too few examples to hold out {data.held_out[name]:.0%} as {name}; "
                    f"raise data.{name}_ratio or give data.{name}_file"
                )
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


class TrainingProgress(TrainerCallback):
    """Steps done, rate and time left while training (see `vitopic.progress.Progress`)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress = Progress("train", state.max_steps, "steps", initial=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update()

    def on_train_end(self, args, state, control, **kwargs):
        self.progress.close()


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


def load_splits(cfg: Config, say: Say) -> Splits:
    """`Splits.load`, saying what it reads and then what it found."""
    say(f"reading {cfg.data.path(cfg.data.train_file)} and the other splits ...")
    splits = Splits.load(cfg.data, cfg.training.seed)
    say(splits.describe(cfg.data))
    return splits


def train(
    cfg: Config,
    resume: bool = False,
    splits: Splits | None = None,
    overwrite: bool = False,
    verbose: bool = False,
    report: Report | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Fine-tune per `cfg`, tune thresholds on dev, and save a checkpoint into `output.dir`.

    Every process computes; only the main process writes, holding the directory's lock. The
    finished model replaces the previous one only at the end (`vitopic.json` last): a run that
    fails at any point leaves the previous model as it was (see `vitopic.run_dir`). `report`
    writes the run's report files beside the saved model before it lands, in the main process.
    The main process says what it does (data, model, device, steps) and shows progress unless
    `quiet`.
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
    say = announcer(state.is_main_process and not quiet)
    bars = transformers_logging.is_progress_bar_enabled()
    if not verbose:
        transformers_logging.disable_progress_bar()  # "Writing model shards" at every save
    try:
        with locked(out) if state.is_main_process else nullcontext():
            splits = splits or load_splits(cfg, say)
            return _train(cfg, state, out, checkpoint, splits, verbose, report, say)
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
    say: Say,
) -> TrainResult:
    labels, head = cfg.data.labels, cfg.model.head
    if cfg.model.name_or_path:
        say(f"loading the base model {cfg.model.name_or_path} ...")
    base = fetch_base_model(cfg.model.name_or_path, cfg.model.revision) if cfg.model.name_or_path else None
    say(f"preparing the text (segmenter {cfg.text.segmenter}) ...")
    texts = {
        name: prepare([ex.text for ex in getattr(splits, name)], cfg.text.segmenter)
        for name in ("train", "dev")
    }
    targets = {name: multi_hot(getattr(splits, name), labels) for name in texts}
    tokenizer = make_tokenizer(base, cfg.text.max_length)
    say("building the model ...")
    model = build_model(cfg.model, labels, cfg.training.seed, tokenizer, base)
    model.config.tokenizer_class = "PhobertTokenizer"
    data = {name: encode(tokenizer, texts[name], targets[name], head, cfg.text.max_length) for name in texts}
    use_pos_weight = cfg.training.pos_weight and head.takes_pos_weight
    callbacks: list[TrainerCallback] = [StopOnNonFiniteLoss()]
    if not verbose and say is not silent:
        callbacks += [EvaluationLog(), TrainingProgress()]
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
    say(describe_model(cfg, model))
    say(describe_schedule(cfg.training, len(data["train"]), state.num_processes, trainer.args.device))
    if state.is_main_process:
        if checkpoint:
            say(f"resuming from {checkpoint}")
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
        if splits.held_out:
            write_json(staging / SPLITS_FILE, splits.held_out)
        metadata.save(staging)
        if report:
            report(staging, result)
        publish(out, staging)  # vitopic.json last
    state.wait_for_everyone()
    return result


def describe_model(cfg: Config, model: torch.nn.Module) -> str:
    """The banner's model line: the base model or the from-scratch shape, and the size."""
    m = cfg.model
    what = (
        f"fine-tuning {m.name_or_path}"
        if m.name_or_path
        else f"from scratch: hidden {m.hidden_size}, {m.num_hidden_layers} layers, "
        f"{m.num_attention_heads} heads, intermediate {m.intermediate_size}"
    )
    size = sum(p.numel() for p in model.parameters())
    return f"model: {what}; {size / 1e6:.1f} M parameters; {m.mode}"


def describe_schedule(t: TrainingConfig, examples: int, processes: int, device: torch.device) -> str:
    """The banner's run line: device, precision, steps per epoch and in all, when it evaluates."""
    precision = "bf16 autocast" if t.bf16 else "fp16 mixed precision" if t.fp16 else "fp32"
    per_epoch = max(
        math.ceil(math.ceil(examples / processes) / t.batch_size) // t.gradient_accumulation_steps, 1
    )
    total = t.max_steps if t.max_steps > 0 else math.ceil(t.epochs * per_epoch)
    every = f"every {t.eval_steps} steps" if t.eval_steps else "every epoch"
    return (
        f"device {device} x {processes}, {precision}; {per_epoch} steps per epoch, {total} in all; "
        f"evaluating on dev {every}"
    )


def resume_hint(out: Path) -> str:
    """How to go on after a run in `out` was stopped: from its last checkpoint, if it has one."""
    try:
        checkpoint = _last_checkpoint(out)
    except RunDirError:
        return "no checkpoint was saved yet, so run the same command again to start over"
    return f"the last checkpoint is {checkpoint}: run the same command with --resume to continue from it"


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
