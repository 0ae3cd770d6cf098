"""The `vitopic` command line: train, predict, evaluate, baseline, data check, push-to-hub, export."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from vitopic.config import DEFAULT_LABELS, SEGMENTERS, load_config
from vitopic.data import DataError
from vitopic.errors import VitopicError


def _read_inputs(args: argparse.Namespace) -> list[str]:
    """Texts from arguments, from --input (plain lines or JSONL with `text`), or from stdin."""
    if args.texts:
        return list(args.texts)
    if args.input:
        lines = Path(args.input).read_text(encoding="utf-8-sig").splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    texts = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{args.input or '<stdin>'}:{lineno}: invalid JSON ({err.msg})") \
                    from err
            if not isinstance(row.get("text"), str):
                raise DataError(f"{args.input or '<stdin>'}:{lineno}: missing string 'text'")
            texts.append(row["text"])
        else:
            texts.append(line)
    return texts


def _rows(texts: list[str], predictions) -> Iterator[dict]:
    for text, p in zip(texts, predictions, strict=True):
        yield {"text": text, "labels": p.labels,
               "scores": {k: round(v, 4) for k, v in p.scores.items()}}


def cmd_train(args: argparse.Namespace) -> int:
    from vitopic.recipes import train_recipe

    cfg = load_config(args.config, args.overrides)
    train_recipe(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from vitopic.predict import TopicClassifier

    texts = _read_inputs(args)
    clf = TopicClassifier.from_pretrained(args.model, revision=args.revision,
                                          segmenter=args.segmenter)
    predictions = clf.predict(texts, batch_size=args.batch_size, threshold=args.threshold,
                              progress=bool(args.input))
    rows = list(_rows(texts, predictions))
    if args.output:
        path = Path(args.output)
        fmt = args.format or ("csv" if path.suffix == ".csv" else "jsonl")
        tmp = path.with_name(f".{path.name}.tmp")  # renamed into place only when complete
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                if fmt == "csv":
                    writer = csv.writer(f)
                    writer.writerow(["text", "labels", *clf.labels])
                    for r in rows:
                        writer.writerow([r["text"], ";".join(r["labels"]),
                                         *(r["scores"][lab] for lab in clf.labels)])
                else:
                    f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        print(f"wrote {len(rows)} predictions to {path}", file=sys.stderr)
    else:
        for r in rows:
            print(json.dumps(r, ensure_ascii=False))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vitopic.recipes import evaluate_recipe

    evaluate_recipe(args.model, args.data, args.out, args.batch_size)
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from vitopic.baseline import baseline_label
    from vitopic.evaluation import format_metrics
    from vitopic.recipes import run_baseline

    cfg = load_config(args.config, args.overrides)
    for key, result in run_baseline(cfg, args.eval).items():
        print(format_metrics(baseline_label(key), result))
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from vitopic.datacheck import check_corpus

    report = check_corpus(args.dir, args.labels.split(","), args.segmenter)
    print(report.format())
    return 1 if report.errors else 0


def cmd_push(args: argparse.Namespace) -> int:
    from vitopic.hub import push_to_hub

    push_to_hub(args.model, args.repo, private=args.private, dry_run=args.dry_run, force=args.force)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from vitopic.export import export_onnx

    for path in export_onnx(args.model, int8=args.int8):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitopic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune from a YAML config")
    p.add_argument("--config", required=True)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous run of another config in output.dir")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="label texts with a trained model")
    p.add_argument("--model", required=True, help="checkpoint dir or Hub id")
    p.add_argument("--revision")
    p.add_argument("--input", help="plain text (one per line) or JSONL with a 'text' field")
    p.add_argument("--output", help="write JSONL or CSV here instead of stdout")
    p.add_argument("--format", choices=["jsonl", "csv"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threshold", type=float)
    p.add_argument("--segmenter", choices=SEGMENTERS, help="override the saved segmenter")
    p.add_argument("texts", nargs="*")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="metrics and plots on a labeled JSONL file")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", help="directory for eval-*.json and plots (default: the model dir)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="TF-IDF + logistic regression, and keyword rules")
    p.add_argument("--config", required=True)
    p.add_argument("--eval", action="append", default=[], metavar="FILE.jsonl",
                   help="also evaluate on this labeled file (repeatable)")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("data", help="corpus tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    c = data_sub.add_parser("check", help="validate a corpus directory and print its counts")
    c.add_argument("dir")
    c.add_argument("--labels", default=",".join(DEFAULT_LABELS))
    c.add_argument("--segmenter", default="pyvi", choices=SEGMENTERS)
    c.set_defaults(func=cmd_data_check)

    p = sub.add_parser("push-to-hub", help="upload a checkpoint to the Hugging Face Hub")
    p.add_argument("--model", required=True)
    p.add_argument("--repo", required=True, help="org/name")
    p.add_argument("--private", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="list files, validate the card")
    p.add_argument("--force", action="store_true",
                   help="upload even if training flagged the model as not worth using")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("export", help="export an ONNX model next to the checkpoint")
    p.add_argument("--model", required=True)
    p.add_argument("--onnx", action="store_true", required=True)
    p.add_argument("--int8", action="store_true", help="also write a dynamic-int8 model")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (VitopicError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
