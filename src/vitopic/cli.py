"""The `vitopic` command line: train, predict, serve, evaluate, baseline, data check, push-to-hub,
export."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from vitopic import __version__
from vitopic.config import Config, ConfigError, DataConfig, PretrainConfig, keys_help, load_config
from vitopic.data import DataError
from vitopic.errors import VitopicError, one_line, shown
from vitopic.labels import DEFAULT_LABELS
from vitopic.options import BACKENDS, SEGMENTERS, SPLITS
from vitopic.prediction_io import FORMATS, INPUT_FORMATS

PREDICT_CHUNK = 2048  # input records read, predicted and written at a time: constant memory
# `train --data` without --config: the offline default's settings (a source checkout's configs/).
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mini-phobert.yaml"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that it unwinds as after Ctrl-C (locks released)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def train_config(args: argparse.Namespace) -> Config:
    """`--config` plus overrides; or, for `--data FILE`, the offline default's settings (or
    `--config`'s) with that file (dev and test held out of it), `--labels` and `--output`, then
    the overrides."""
    if args.data is None:
        if args.labels or args.output:
            raise ConfigError("<command line>", "--labels", "--labels and --output go with --data FILE")
        if args.config is None:
            raise ConfigError("<command line>", "--config", "give --config FILE, or --data FILE --labels A,B")
        return load_config(args.config, args.overrides)
    if not args.labels:
        raise ConfigError("<command line>", "--labels", "--data needs --labels (comma-separated)")
    data = Path(args.data)
    short = [
        f"data.dir={json.dumps(str(data.parent))}",
        f"data.train_file={json.dumps(data.name)}",
        "data.dev_file=null",
        "data.test_file=null",
        "data.showcase_file=null",
        f"data.labels={json.dumps(args.labels)}",
        *([f"output.dir={json.dumps(args.output)}"] if args.output else []),
    ]
    return load_config(args.config or DEFAULT_CONFIG, [*short, *args.overrides])


def cmd_train(args: argparse.Namespace) -> int:
    from vitopic.training import resume_hint
    from vitopic.workflows import train_and_report

    cfg = train_config(args)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        train_and_report(
            cfg, resume=args.resume, overwrite=args.overwrite, verbose=args.verbose, quiet=args.quiet
        )
    except KeyboardInterrupt as stop:
        what, code = ("SIGTERM", 128 + signal.SIGTERM) if isinstance(stop, Terminated) else ("Ctrl-C", 130)
        print(f"training stopped ({what}); {resume_hint(Path(cfg.output.dir))}", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from vitopic.config import PretrainConfig
    from vitopic.pretraining import pretrain

    cfg = load_config(args.config, args.overrides, root=PretrainConfig)
    pretrain(cfg, resume=args.resume)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from vitopic.predict import TopicClassifier
    from vitopic.prediction_io import (
        count_records,
        output_format,
        predict_rows,
        read_records,
        write_atomically,
        write_rows,
    )

    if args.texts and args.input:
        raise DataError("give texts as arguments or --input FILE, not both")
    fmt = output_format(args.output, args.format)  # a bad --output fails before any work
    field = args.text_field
    records = (
        iter([{field: t} for t in args.texts])
        if args.texts
        else read_records(args.input, field, args.input_format)
    )
    first = list(itertools.islice(records, PREDICT_CHUNK))  # a bad start fails before loading
    if not first:
        raise DataError(f"{args.input or '<stdin>'}: no input (it is empty)")
    total = count_records(Path(args.input), args.input_format) if args.input else None
    clf = TopicClassifier.from_pretrained(
        args.model, revision=args.revision, device=args.device, segmenter=args.segmenter, backend=args.backend
    )
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the partial output's temp file is removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    rows = predict_rows(
        clf,
        itertools.chain(first, records),
        field,
        PREDICT_CHUNK,
        progress=bool(args.input) and not args.quiet,
        total=total,
        batch_size=args.batch_size,
        threshold=args.threshold,
        split=args.split,
        top_k=args.top_k,
        pieces=args.pieces,
    )
    if args.output:
        count = write_atomically(Path(args.output), rows, fmt, clf.labels, field)
        if not args.quiet:
            print(f"wrote {count} predictions to {args.output}", file=sys.stderr)
    else:
        write_rows(rows, fmt, clf.labels, sys.stdout, field)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from vitopic.serving import Limits, allowed_hosts, base_url, create_app, server_config

    failure: list[str] = []

    def stop(reason: str) -> None:
        failure.append(reason)
        server.should_exit = True

    limits = Limits(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_texts=args.max_texts,
        max_body_bytes=args.max_body_bytes,
        max_text_chars=args.max_text_chars,
        max_request_chars=args.max_request_chars,
        max_batch_chars=args.max_batch_chars,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
    )
    app = create_app(
        args.model,
        limits=limits,
        split=args.split,
        threshold=args.threshold,
        revision=args.revision,
        device=args.device,
        backend=args.backend,
        on_load_failure=stop,
        hosts=allowed_hosts(args.host, args.allowed_hosts),
        docs=args.docs,
        url=base_url(args.host, args.port),
    )
    server = uvicorn.Server(
        server_config(
            app,
            limits,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=10,
        )
    )
    server.run()
    if failure:
        raise VitopicError(f"could not load the model: {failure[0]}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vitopic.workflows import evaluate_on_file

    if args.save and not args.tune_thresholds:
        raise DataError("--save writes thresholds tuned with --tune-thresholds; give both")
    evaluate_on_file(
        args.model,
        args.data,
        args.out,
        args.batch_size,
        args.split,
        errors=args.errors,
        tune=args.tune_thresholds,
        save=args.save,
        update_card=args.update_card,
    )
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from vitopic.baseline import format_baselines
    from vitopic.workflows import run_baseline

    cfg = load_config(args.config, args.overrides)
    print("\n".join(format_baselines(run_baseline(cfg, args.eval))))
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from vitopic.datacheck import check_corpus

    if args.config:
        cfg = load_config(args.config, check_files=False)
        directory = args.dir or cfg.data.dir
        labels, segmenter = args.labels or cfg.data.labels, args.segmenter or cfg.text.segmenter
    else:
        directory, labels = args.dir or DataConfig.dir, args.labels or list(DEFAULT_LABELS)
        segmenter = args.segmenter or "pyvi"
    report = check_corpus(directory, labels, segmenter)
    print(report.format())
    return 1 if report.errors else 0


def cmd_push(args: argparse.Namespace) -> int:
    from vitopic.hub import push_to_hub

    push_to_hub(args.model, args.repo, private=args.private, dry_run=args.dry_run, force=args.force)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from vitopic.export import export_ct2, export_onnx

    for path in export_ct2(args.model) if args.ct2 else export_onnx(args.model, int8=args.int8):
        print(f"wrote {path}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _integer(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number in ASCII digits, at least `minimum`."""

    def parse(value: str) -> int:
        digits = value.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()) or int(value) < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {shown(value)}")
        return int(value)

    return parse


_positive_int = _integer(1)


def _probability(value: str) -> float:
    try:
        number = float(value) if value.isascii() else float("nan")
    except ValueError:
        number = float("nan")
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {shown(value)}")
    return number


MODEL_HELP = "checkpoint dir or Hub id"


def _add_split(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--split",
        default="sentence",
        choices=SPLITS,
        help="score each sentence and aggregate (default), or each input whole",
    )


def _add_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=_positive_int, default=32, help="texts per model call (default: 32)")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """What `predict` and `serve` share: which model, where it runs, and how it decides."""
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--revision", help="Hub branch, tag or commit")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="auto (default: on the CPU the fastest export in the model directory, ct2-int8, "
        "onnx-int8, onnx, else torch; on a GPU torch), torch (fp32), torch-bf16, or onnx / "
        "onnx-int8 / ct2-int8 on the CPU (after vitopic export)",
    )
    p.add_argument("--device", help="cpu (default), cuda, cuda:1, mps (torch backends)")
    p.add_argument("--threshold", type=_probability, help="one threshold for every label (multi_label)")
    _add_split(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vitopic", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vitopic {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, help="the command (vitopic COMMAND --help: its options)"
    )

    p = sub.add_parser(
        "train",
        help="fine-tune from a YAML config, or on one labeled file (--data)",
        epilog="config keys (in the YAML file's sections, or as section.key=value overrides; "
        "docs/config.md):\n" + keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="the run's YAML config (with --data: settings to start from)")
    p.add_argument(
        "--data",
        help="train on this one labeled file (JSONL, CSV or saved dataset), dev and test held out of "
        f"it, on the offline default's settings ({DEFAULT_CONFIG.name}) unless --config",
    )
    p.add_argument(
        "--labels", type=lambda v: v.split(","), help="with --data: the label names, comma-separated"
    )
    p.add_argument("--output", help="with --data: the run directory (output.dir)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--quiet", action="store_true", help="print only errors and the final lines")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="Trainer's own progress bars and raw log dicts, beside vitopic's lines",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a previous run of another config in output.dir"
    )
    p.add_argument("overrides", nargs="*", help="section.key=value overrides (the keys below)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "pretrain",
        help="masked-LM pretraining of a PhoBERT-shaped encoder on unlabeled text",
        epilog="config keys (section.key=value overrides):\n" + keys_help(PretrainConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="the pretraining run's YAML config")
    p.add_argument("--resume", action="store_true", help="continue from the last saved state")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides (the keys below)")
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("predict", help="label texts with a trained model")
    _add_model_options(p)
    p.add_argument(
        "--input",
        help="a file: plain text (one per line), JSONL with a text field, "
        "or CSV with a header (.csv); default: stdin",
    )
    p.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        help="how to read the whole input (default: from the name, .txt, .jsonl or .csv; "
        "else the first line decides: a JSON object with the text field means JSONL)",
    )
    p.add_argument("--text-field", default="text", help="the JSONL/CSV field holding the text")
    p.add_argument("--output", help="write here (.jsonl or .csv) instead of stdout, atomically")
    p.add_argument("--format", choices=FORMATS, help="jsonl (default), csv or table")
    _add_batch_size(p)
    p.add_argument(
        "--top-k",
        type=_positive_int,
        metavar="K",
        help="keep only the K highest scores per row, and the labels among them",
    )
    p.add_argument("--pieces", action="store_true", help="add per-sentence scores to each row")
    p.add_argument("--segmenter", choices=SEGMENTERS, help="override the saved segmenter")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    p.add_argument("texts", nargs="*", help="texts to label, one row each (else --input or stdin)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("serve", help="an HTTP service (FastAPI on uvicorn) with micro-batching")
    _add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen beyond this machine")
    p.add_argument("--port", type=int, default=8000, help="default: 8000")
    p.add_argument(
        "--max-batch",
        type=_positive_int,
        default=64,
        help="texts per model call, gathered from concurrent requests",
    )
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a batch waits for more requests (0: never)"
    )
    p.add_argument("--max-texts", type=_positive_int, default=256, help="texts per request")
    p.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=2 * 1024 * 1024,
        help="request body size (413 above; default: 2 MiB)",
    )
    p.add_argument(
        "--max-text-chars", type=_positive_int, default=20_000, help="characters per text (413 above)"
    )
    p.add_argument(
        "--max-request-chars", type=_positive_int, default=200_000, help="characters per request (413 above)"
    )
    p.add_argument(
        "--max-batch-chars",
        type=_positive_int,
        default=20_000,
        help="characters per model call: a bigger request takes several, smaller requests go first",
    )
    p.add_argument("--header-timeout", type=float, default=10.0, help="seconds to send a request's headers")
    p.add_argument("--body-timeout", type=float, default=30.0, help="seconds to send a body (408 after)")
    p.add_argument(
        "--allowed-hosts",
        nargs="+",
        default=[],
        metavar="HOST",
        help="Host names answered besides localhost, 127.0.0.1 and ::1 ('*': any); a server bound to "
        "loopback answers only those (DNS rebinding)",
    )
    p.add_argument(
        "--docs",
        action="store_true",
        help="serve /docs and /openapi.json (off by default: the docs page loads scripts from a CDN)",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="info (default): the ready line and one access line per request; warning: problems only",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("evaluate", help="metrics and plots on a labeled file (JSONL, CSV or a saved dataset)")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--data", required=True, help="the labeled file: JSONL, CSV or a saved dataset directory")
    p.add_argument("--out", help="directory for eval-*.json and plots (default: the model dir)")
    _add_batch_size(p)
    _add_split(p)
    p.add_argument(
        "--errors", type=_integer(0), default=0, metavar="N", help="print the first N wrong predictions"
    )
    p.add_argument(
        "--tune-thresholds",
        action="store_true",
        help="also tune thresholds on this file and print the metrics at them",
    )
    p.add_argument(
        "--save", action="store_true", help="with --tune-thresholds: write them into the model's vitopic.json"
    )
    p.add_argument(
        "--update-card",
        action="store_true",
        help="add this result to the model card (README.md) and metrics.json",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="TF-IDF + logistic regression, and keyword rules")
    p.add_argument("--config", required=True, help="the run's YAML config (its data and labels)")
    p.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="FILE.jsonl",
        help="also evaluate on this labeled file (repeatable)",
    )
    p.add_argument("overrides", nargs="*", help="section.key=value overrides (see vitopic train --help)")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("data", help="corpus tools")
    data_sub = p.add_subparsers(dest="data_command", required=True, help="the corpus tool")
    c = data_sub.add_parser("check", help="validate a corpus directory and print its counts")
    c.add_argument(
        "dir", nargs="?", help=f"the corpus directory (default: the config's data.dir, else {DataConfig.dir})"
    )
    c.add_argument("--config", help="take data.dir, data.labels and text.segmenter from it")
    c.add_argument(
        "--labels",
        type=lambda v: v.split(","),
        help=f"comma-separated (default: the config's, else {','.join(DEFAULT_LABELS)})",
    )
    c.add_argument("--segmenter", choices=SEGMENTERS, help="default: the config's, else pyvi")
    c.set_defaults(func=cmd_data_check)

    p = sub.add_parser("push-to-hub", help="upload a checkpoint to the Hugging Face Hub")
    p.add_argument("--model", required=True, help="the checkpoint directory to upload")
    p.add_argument("--repo", required=True, help="org/name")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--dry-run", action="store_true", help="list files, validate the card")
    p.add_argument(
        "--force", action="store_true", help="upload even if training flagged the model as not worth using"
    )
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "export", help="write model.onnx (ONNX Runtime), or ct2-int8/ (CTranslate2), into the checkpoint"
    )
    p.add_argument("--model", required=True, help="the checkpoint directory (the files go into it)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--int8", action="store_true", help="also write a dynamic-int8 model.int8.onnx")
    kind.add_argument(
        "--ct2",
        action="store_true",
        help="write ct2-int8/, a CTranslate2 int8 model, instead of ONNX (pip install 'vitopic[ct2]')",
    )
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one line on stderr, a config problem one line each
    (VITOPIC_DEBUG=1: the traceback)."""
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" on every command says nothing
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("VITOPIC_DEBUG"):
            raise
        expected = isinstance(err, VitopicError | OSError | ValueError | TypeError)
        hint = "" if expected else " (unexpected: rerun with VITOPIC_DEBUG=1 and report it)"
        lines = str(err).splitlines() if isinstance(err, ConfigError | DataError) else [one_line(err)]
        for line in lines:  # a config's problems, or a data file's bad rows, all at once, one line each
            print(f"error: {line}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
