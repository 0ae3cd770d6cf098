"""Every bad input we try, and what vitopic does with it; the table in docs/robustness.md comes from here.

Run `VITOPIC_WRITE_DOCS=1 python -m pytest tests/test_robustness.py` to regenerate the document;
a plain run fails when the document no longer matches what the code does.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import DATA, ROOT

from vitopic import TopicClassifier
from vitopic.config import load_config
from vitopic.data import read_jsonl
from vitopic.datacheck import check_corpus

DOC = ROOT / "docs" / "robustness.md"
LABELS = ["ukraine_aid", "gaza", "nato"]
GAZA = "Israel không kích Rafah ở miền nam Dải Gaza."


@dataclass(frozen=True)
class Context:
    tmp: Path
    clf: TopicClassifier
    model_dir: Path


@dataclass(frozen=True)
class Case:
    area: str
    name: str
    run: Callable[[Context], object]  # returns a description of what was accepted, or raises


def _config(body: str, *overrides: str) -> Callable:
    def run(ctx: Context) -> object:
        path = ctx.tmp / "config.yaml"
        path.write_text(f"data:\n  dir: {DATA}\n" + body, "utf-8")
        load_config(path, overrides)
        return "accepted"

    return run


def _data(content: bytes | str, nfc_required: bool = False) -> Callable:
    def run(ctx: Context) -> object:
        path = ctx.tmp / "rows.jsonl"
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        rows = read_jsonl(path, LABELS, require_nfc=nfc_required)
        nfc = all(unicodedata.is_normalized("NFC", r.text) for r in rows)
        return f"accepted: {len(rows)} row(s), text NFC: {nfc}"

    return run


def _predict(value: object, **kwargs) -> Callable:
    def run(ctx: Context) -> object:
        result = ctx.clf.predict(value, **kwargs)
        results = result if isinstance(result, list) else [result]
        parts = []
        for r in results:
            ok = all(0.0 <= s <= 1.0 for s in r.scores.values())
            kind = "empty result" if r.empty else f"result ({len(r.pieces)} pieces)" if r.pieces \
                else "result"
            parts.append(kind + ("" if ok else " WITH SCORES OUTSIDE [0, 1]"))
        shape = "one Prediction" if not isinstance(result, list) else f"{len(results)} Predictions"
        return f"{shape}: " + ", ".join(parts) if parts else f"{shape}"

    return run


def _checkpoint(mutate: Callable[[Path], None]) -> Callable:
    def run(ctx: Context) -> object:
        target = ctx.tmp / "model"
        target.mkdir()
        for p in ctx.model_dir.iterdir():
            if p.is_file():
                (target / p.name).write_bytes(p.read_bytes())
        mutate(target)
        TopicClassifier.from_pretrained(target)
        return "loaded"

    return run


def _to_pickle(d: Path) -> None:
    from safetensors.torch import load_file

    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()


def _relabel(d: Path) -> None:
    meta = json.loads((d / "vitopic.json").read_text())
    meta["labels"] = ["ukraine_aid", "gaza", "sport"]
    (d / "vitopic.json").write_text(json.dumps(meta))


def _corpus_with_long_row(ctx: Context) -> object:
    tmp = ctx.tmp
    for split in ("train", "dev", "test"):
        head = (DATA / f"{split}.jsonl").read_text("utf-8").splitlines(keepends=True)[:30]
        (tmp / f"{split}.jsonl").write_text("".join(head), "utf-8")
    with open(tmp / "dev.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "long", "text": "viện trợ " * 5000, "labels": []}) + "\n")
    report = check_corpus(tmp, LABELS)
    return "; ".join(e for e in report.errors) or "no problems"


def _load(name: str) -> Callable:
    return lambda _ctx: TopicClassifier.from_pretrained(name)


ROW = '{"text": "Viện trợ cho Kiev", "labels": ["ukraine_aid"]}'
CASES = [
    Case("config", "unknown key", _config("training:\n  learning_rat: 0.1\n")),
    Case("config", "wrong type", _config("training:\n  batch_size: sixteen\n")),
    Case("config", "bool given as 1", _config("training:\n  bf16: 1\n")),
    Case("config", "missing config file", lambda ctx: load_config(ctx.tmp / "nope.yaml")),
    Case("config", "missing data file", _config("", "data.train_file=absent.jsonl")),
    Case("config", "label list empty", _config("", "data.labels=[]")),
    Case("config", "label listed twice", _config("", "data.labels=[gaza, gaza]")),
    Case("config", "label 'none' in single_label mode",
         _config("", "model.mode=single_label", "data.labels=[gaza, none]")),
    Case("config", "negative learning rate", _config("training:\n  learning_rate: -0.001\n")),
    Case("config", "batch size 0", _config("training:\n  batch_size: 0\n")),
    Case("config", "max_length over PhoBERT's 256", _config("text:\n  max_length: 512\n")),
    Case("config", "unknown segmenter", _config("text:\n  segmenter: jieba\n")),
    Case("config", "section is not a mapping", _config("training: 5\n")),
    Case("config", "invalid YAML", _config("model: [unclosed\n")),
    Case("config", "override without '='", _config("", "training.epochs")),
    Case("config", "hidden size not divisible by heads", _config("model:\n  hidden_size: 65\n")),
    Case("config", "infinite learning rate", _config("", "training.learning_rate=.inf")),
    Case("config", "NaN warmup ratio", _config("training:\n  warmup_ratio: .nan\n")),
    Case("config", "key given twice", _config("training:\n  epochs: 2\n  epochs: 3\n")),
    Case("data", "invalid JSON line", _data(ROW + "\n{not json}\n")),
    Case("data", "line is not an object", _data("[1, 2]\n")),
    Case("data", "missing text", _data('{"labels": []}\n')),
    Case("data", "text is not a string", _data('{"text": 5, "labels": []}\n')),
    Case("data", "empty text", _data('{"text": "  ", "labels": []}\n')),
    Case("data", "labels not a list", _data('{"text": "a", "labels": "gaza"}\n')),
    Case("data", "unknown label", _data('{"text": "a", "labels": ["sport"]}\n')),
    Case("data", "empty file", _data("")),
    Case("data", "id is a boolean", _data('{"id": true, "text": "a", "labels": []}\n')),
    Case("data", "blank lines between rows", _data(f"\n{ROW}\n\n{ROW}\n")),
    Case("data", "UTF-8 BOM", _data(b"\xef\xbb\xbf" + ROW.encode() + b"\n")),
    Case("data", "CRLF line endings", _data(f"{ROW}\r\n{ROW}\r\n")),
    Case("data", "NFD text (loader)", _data(unicodedata.normalize("NFD", ROW) + "\n")),
    Case("data", "NFD text (data check)", _data(unicodedata.normalize("NFD", ROW) + "\n", True)),
    Case("data", "duplicate ids", _data('{"id": 1, "text": "a", "labels": []}\n'
                                        '{"id": 1, "text": "b", "labels": []}\n')),
    Case("data", "10,000-character sentence (loader)",
         _data(json.dumps({"text": "x" * 10_000, "labels": []}) + "\n")),
    Case("data", "10,000-character sentence (data check)", _corpus_with_long_row),
    Case("predict", "empty string", _predict("")),
    Case("predict", "whitespace only", _predict(["  \n\t "])),
    Case("predict", "None", _predict(None)),
    Case("predict", "None inside a list", _predict([GAZA, None])),
    Case("predict", "integer inside a list", _predict([GAZA, 3])),
    Case("predict", "bytes", _predict([GAZA.encode()])),
    Case("predict", "a dict", _predict({"text": GAZA})),
    Case("predict", "empty list", _predict([])),
    Case("predict", "NFD text", _predict([unicodedata.normalize("NFD", GAZA)])),
    Case("predict", "HTML markup", _predict([f"<p><b>{GAZA}</b>&nbsp;</p>"])),
    Case("predict", "markup only", _predict(["<br/><div></div>"])),
    Case("predict", "emoji only", _predict(["😀🔥🇺🇦"])),
    Case("predict", "English text", _predict(["The weather in London is mild today."])),
    Case("predict", "Chinese text", _predict(["今日は晴れです。北京天气很好。"])),
    Case("predict", "punctuation only", _predict(["... !!! ???"])),
    Case("predict", "control and zero-width characters", _predict([f"\x00\u200b{GAZA}\x07"])),
    Case("predict", "already word-segmented", _predict(["Israel không_kích Rafah ở Dải_Gaza ."])),
    Case("predict", "article of 3,000 tokens", _predict([" ".join([GAZA] * 150)])),
    Case("predict", "2,000 words without punctuation", _predict([" ".join(["viện trợ Kiev"] * 700)])),
    Case("predict", "batch_size=0", _predict([GAZA], batch_size=0)),
    Case("predict", "threshold=1.5", _predict([GAZA], threshold=1.5)),
    Case("loading", "pickle-only weights", _checkpoint(_to_pickle)),
    Case("loading", "vitopic.json missing (unfinished run)",
         _checkpoint(lambda d: (d / "vitopic.json").unlink())),
    Case("loading", "vitopic.json labels disagree with config.json", _checkpoint(_relabel)),
    Case("loading", "path that does not exist", _load("/nonexistent/dir/model")),
    Case("loading", "Hub id not in the offline cache", _load("vitopic-test/not-cached")),
]


def outcome(case: Case, ctx: Context) -> str:
    """What happened, with temporary paths masked so the text is stable."""
    try:
        value = case.run(ctx)
        result = str(value) if case.area == "data" else f"accepted: {value}"
    except Exception as err:  # the point is to record whatever happens
        result = f"{type(err).__name__}: {str(err).splitlines()[0]}"
    return result.replace(str(ctx.tmp), "<tmp>").replace(str(DATA), "<data>")


_RESULTS: dict[int, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _write_doc_at_the_end():
    yield
    if len(_RESULTS) == len(CASES) and os.environ.get("VITOPIC_WRITE_DOCS"):
        DOC.write_text(render(), "utf-8")


def render() -> str:
    lines = [
        "# Robustness: every bad input tried, and what vitopic does",
        "",
        "Generated from `tests/test_robustness.py` (`VITOPIC_WRITE_DOCS=1 python -m pytest "
        "tests/test_robustness.py`); the tests fail when this table no longer matches the code.",
        "An error is raised before any model loads (config, data) or before any tensor is built "
        "(predict); `<tmp>` and `<data>` stand for the paths involved.",
        "",
        "| # | area | input | behaviour |",
        "|---|---|---|---|",
    ]
    for i, case in enumerate(CASES):
        text = _RESULTS[i].replace("|", "\\|")
        lines.append(f"| {i + 1} | {case.area} | {case.name} | {text} |")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.area}-{c.name}" for c in CASES])
def test_case(index, tmp_path, classifier, trained_dir):
    case = CASES[index]
    result = outcome(case, Context(tmp_path, classifier, trained_dir))
    _RESULTS[index] = result
    assert "WITH SCORES OUTSIDE" not in result
    assert not result.startswith(("RuntimeError", "IndexError", "KeyError", "AttributeError")), result
    if case.area in ("config", "loading"):
        assert result.startswith(("ConfigError", "CheckpointError")), result
    if case.area == "config" and result.startswith("ConfigError"):
        assert ": " in result and ("config.yaml" in result or "nope.yaml" in result
                                   or "<command line>" in result)
    if case.area == "data" and result.startswith("DataError"):
        assert re.match(r"DataError: <tmp>/rows\.jsonl(:\d+)?: ", result), result
    if os.environ.get("VITOPIC_WRITE_DOCS") is None and DOC.is_file():
        documented = {f"{c.area}|{c.name}": line for c, line in zip(
            CASES, [row.split(" | ", 3)[-1].rstrip(" |") for row in DOC.read_text("utf-8")
                    .splitlines() if row.startswith("| ") and not row.startswith("| #")],
            strict=False)}
        assert documented.get(f"{case.area}|{case.name}") == result.replace("|", "\\|"), \
            "docs/robustness.md is out of date: regenerate it (see its first lines)"
