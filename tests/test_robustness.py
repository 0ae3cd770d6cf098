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
from helpers import DATA, LABELS, ROOT, TINY, edit_json, edit_weights, run_cli

from vitopic import TopicClassifier
from vitopic.config import ConfigError, load_config
from vitopic.data import read_jsonl
from vitopic.datacheck import check_corpus
from vitopic.text import normalize, split_sentences
from vitopic.training import train

DOC = ROOT / "docs" / "robustness.md"
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
            kind = "empty result" if r.empty else f"result ({len(r.pieces)} pieces)" if r.pieces else "result"
            parts.append(kind + ("" if ok else " WITH SCORES OUTSIDE [0, 1]"))
        shape = "one Prediction" if not isinstance(result, list) else f"{len(results)} Predictions"
        return f"{shape}: " + ", ".join(parts) if parts else f"{shape}"

    return run


def _checkpoint(mutate: Callable[[Path], None], backend: str = "torch") -> Callable:
    def run(ctx: Context) -> object:
        target = ctx.tmp / "model"
        target.mkdir()
        for p in ctx.model_dir.iterdir():
            if p.is_file():
                (target / p.name).write_bytes(p.read_bytes())
        mutate(target)
        TopicClassifier.from_pretrained(target, backend=backend)
        return "loaded"

    return run


def _to_pickle(d: Path) -> None:
    from safetensors.torch import load_file

    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()


def _edit_json(name: str, **changes) -> Callable[[Path], None]:
    return lambda d: edit_json(d / name, **changes)


def _edit_weights(change: Callable[[dict], None]) -> Callable[[Path], None]:
    return lambda d: edit_weights(d, change)


def _shard_index(target: str) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        from safetensors import safe_open

        with safe_open(d / "model.safetensors", "pt") as f:
            names = list(f.keys())
        (d / "model.safetensors").unlink()
        (d / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": dict.fromkeys(names, target)})
        )

    return mutate


def _link_out(name: str) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        outside = d.parent / "elsewhere"
        outside.mkdir()
        (d / name).rename(outside / name)
        (d / name).symlink_to(outside / name)

    return mutate


def _corpus_with_long_row(ctx: Context) -> object:
    tmp = ctx.tmp
    for split in ("train", "dev", "test"):
        head = (DATA / f"{split}.jsonl").read_text("utf-8").splitlines(keepends=True)[:30]
        (tmp / f"{split}.jsonl").write_text("".join(head), "utf-8")
    with open(tmp / "dev.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "long", "text": "viện trợ " * 5000, "labels": []}) + "\n")
    report = check_corpus(tmp, LABELS)
    return "; ".join(e for e in report.errors) or "no problems"


def _text(step: Callable[[str], object], value: str) -> Callable:
    return lambda _ctx: repr(step(value))


def _cli(*argv: str, stdin: str = "", files: dict[str, bytes] | None = None) -> Callable:
    """`vitopic ...` in-process: the exit code and what it printed to stderr ({tmp}, {model})."""

    def run(ctx: Context) -> object:
        for name, content in (files or {}).items():
            (ctx.tmp / name).write_bytes(content)
        args = [a.replace("{tmp}", str(ctx.tmp)).replace("{model}", str(ctx.model_dir)) for a in argv]
        code, _, err = run_cli(*args, stdin=stdin)
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) <= 1, lines  # one line, never a traceback
        return f"exit {code}: {lines[0] if lines else 'nothing on stderr'}"

    return run


def _train_into(prepare_dir: Callable[[Path], None], *overrides: str, resume: bool = False) -> Callable:
    def run(ctx: Context) -> object:
        out = ctx.tmp / "out"
        prepare_dir(out)
        given = [o.replace("{tmp}", str(ctx.tmp)) for o in overrides]
        train(load_config(TINY, [f"data.dir={DATA}", f"output.dir={out}", *given]), resume=resume)
        return "trained"

    return run


def _load(name: str) -> Callable:
    return lambda _ctx: TopicClassifier.from_pretrained(name)


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


ROW = '{"text": "Viện trợ cho Kiev", "labels": ["ukraine_aid"]}'
CASES = [
    Case("config", "unknown key", _config("training:\n  learning_rat: 0.1\n")),
    Case("config", "wrong type", _config("training:\n  batch_size: sixteen\n")),
    Case("config", "bool given as 1", _config("training:\n  bf16: 1\n")),
    Case("config", "missing config file", lambda ctx: load_config(ctx.tmp / "nope.yaml")),
    Case("config", "missing data file", _config("", "data.train_file=absent.jsonl")),
    Case("config", "label list empty", _config("", "data.labels=[]")),
    Case("config", "label listed twice", _config("", "data.labels=[gaza, gaza]")),
    Case(
        "config",
        "label 'none' in single_label mode",
        _config("", "model.mode=single_label", "data.labels=[gaza, none]"),
    ),
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
    Case(
        "config", "exponent without a dot (2e-3) in the file", _config("training:\n  learning_rate: 2e-3\n")
    ),
    Case("config", "override with unclosed list 'x=[1'", _config("", "training.epochs=[1")),
    Case(
        "config",
        "!!python tag on the command line",
        _config("", "training.epochs=!!python/object/apply:os.system [ls]"),
    ),
    Case(
        "config",
        "!!python tag in the file",
        _config("training:\n  epochs: !!python/object/apply:os.system [ls]\n"),
    ),
    Case(
        "config",
        "UTF-16 config file",
        lambda ctx: load_config(_write(ctx.tmp / "config.yaml", "training:\n  epochs: 2\n".encode("utf-16"))),
    ),
    Case(
        "config",
        "Latin-1 config file",
        lambda ctx: load_config(
            _write(ctx.tmp / "config.yaml", "# café\ntraining:\n  epochs: 2\n".encode("latin-1"))
        ),
    ),
    Case(
        "config",
        "three bad values (every one reported)",
        _config("training:\n  batch_size: 0\n  warmup_ratio: 2.0\nmodel:\n  dropout: 1.5\n"),
    ),
    Case(
        "config",
        "a from-scratch shape key with a pretrained model",
        _config("model:\n  name_or_path: vinai/phobert-base\n  num_hidden_layers: 4\n"),
    ),
    Case("config", "revision without a pretrained model", _config("model:\n  revision: main\n")),
    Case(
        "config",
        "pos_weight in single_label mode",
        _config("model:\n  mode: single_label\ntraining:\n  pos_weight: true\n"),
    ),
    Case("data", "invalid JSON line", _data(ROW + "\n{not json}\n")),
    Case("data", "lone surrogate in text", _data('{"text": "Gaza \\ud800", "labels": []}\n')),
    Case("data", "Latin-1 file", _data('{"text": "café", "labels": []}\n'.encode("latin-1"))),
    Case("data", "UTF-16 file", _data(ROW.encode("utf-16"))),
    Case("data", "id with 5,001 digits", _data('{"id": ' + "9" * 5001 + ', "text": "a", "labels": []}\n')),
    Case(
        "data",
        "100,000-deep nesting",
        _data('{"text": "a", "labels": [], "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
    ),
    Case(
        "data",
        "escaped form feed and raw U+2028 in a row",
        _data('{"text": "Kiev\\fnhận\u2028viện trợ", "labels": ["ukraine_aid"]}\n'),
    ),
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
    Case(
        "data",
        "duplicate ids",
        _data('{"id": 1, "text": "a", "labels": []}\n{"id": 1, "text": "b", "labels": []}\n'),
    ),
    Case(
        "data",
        "10,000-character sentence (loader)",
        _data(json.dumps({"text": "x" * 10_000, "labels": []}) + "\n"),
    ),
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
    Case("predict", "lone surrogate", _predict([GAZA, "Gaza \ud800"])),
    Case("predict", "batch_size=2.0", _predict([GAZA], batch_size=2.0)),
    Case("predict", "batch_size='4'", _predict([GAZA], batch_size="4")),
    Case("predict", "batch_size=None", _predict([GAZA], batch_size=None)),
    Case("predict", "threshold='0.5'", _predict([GAZA], threshold="0.5")),
    Case("predict", "threshold=NaN", _predict([GAZA], threshold=float("nan"))),
    Case("predict", "split='paragraph'", _predict([GAZA], split="paragraph")),
    Case("predict", "two sentences, two topics", _predict(f"NATO họp tại Brussels. {GAZA}")),
    Case("predict", "text in angle brackets", _predict(["Quân đội <Israel tấn công Gaza> hôm nay"])),
    Case("predict", "'A. ' repeated 100,000 times", _predict(["A. " * 100_000])),
    Case("text", "angle brackets around words", _text(normalize, "Quân đội <Israel tấn công> nay")),
    Case("text", "escaped < and >", _text(normalize, "x&lt;y và z&gt;w")),
    Case("text", "real tags with attributes", _text(normalize, '<p class="a">Kiev<br/></p>')),
    Case("text", "escaped tags", _text(normalize, "&lt;b&gt;Kiev&lt;/b&gt;")),
    Case("text", "unclosed comment", _text(normalize, "Kiev <!-- ghi chú")),
    Case("text", "'<!-- ' repeated 20,000 times", _text(lambda t: len(normalize(t)), "<!-- " * 20000)),
    Case(
        "text", "form feed and U+2028 (sentences)", _text(split_sentences, "Một câu.\fvẫn một\u2028câu. Hai.")
    ),
    Case(
        "device",
        "device='banana'",
        lambda ctx: TopicClassifier.from_pretrained(ctx.model_dir, device="banana"),
    ),
    Case(
        "device",
        "device='cuda:7'",
        lambda ctx: TopicClassifier.from_pretrained(ctx.model_dir, device="cuda:7"),
    ),
    Case(
        "cli",
        "--output with a .txt name",
        _cli("predict", "--model", "{model}", "--output", "{tmp}/x.txt", GAZA),
    ),
    Case("cli", "--output is a directory", _cli("predict", "--model", "{model}", "--output", "{tmp}", GAZA)),
    Case("cli", "--input is a directory", _cli("predict", "--model", "{model}", "--input", "{tmp}")),
    Case(
        "cli",
        "--input is Latin-1",
        _cli(
            "predict",
            "--model",
            "{model}",
            "--input",
            "{tmp}/in.txt",
            files={"in.txt": "café\n".encode("latin-1")},
        ),
    ),
    Case(
        "cli",
        "texts and --input together",
        _cli("predict", "--model", "{model}", "--input", "{tmp}/in.txt", GAZA, files={"in.txt": b"a\n"}),
    ),
    Case("cli", "empty stdin", _cli("predict", "--model", "{model}")),
    Case(
        "cli",
        "CSV without a text column",
        _cli("predict", "--model", "{model}", "--input", "{tmp}/in.csv", files={"in.csv": b"id,body\n1,a\n"}),
    ),
    Case(
        "cli",
        "CSV row with extra fields",
        _cli("predict", "--model", "{model}", "--input", "{tmp}/in.csv", files={"in.csv": b"text\na,b\n"}),
    ),
    Case("cli", "--batch-size 0", _cli("predict", "--model", "{model}", "--batch-size", "0", GAZA)),
    Case("cli", "--threshold 2", _cli("predict", "--model", "{model}", "--threshold", "2", GAZA)),
    Case("cli", "unknown backend", _cli("predict", "--model", "{model}", "--backend", "trt", GAZA)),
    Case("cli", "unknown subcommand", _cli("fit", "--config", "x.yaml")),
    Case(
        "cli",
        "evaluate: data file missing",
        _cli("evaluate", "--model", "{tmp}/nomodel", "--data", "{tmp}/absent.jsonl"),
    ),
    Case("cli", "train: override error", _cli("train", "--config", str(TINY), "training.epochs=[1")),
    Case(
        "cli",
        "push-to-hub while offline",
        _cli("push-to-hub", "--model", "{model}", "--repo", "vitopic-test/offline", "--force"),
    ),
    Case("run dir", "output.dir is a file", _train_into(lambda out: out.write_text("x"))),
    Case(
        "run dir",
        "output.dir holds other files",
        _train_into(lambda out: (out.mkdir(), (out / "README.md").write_text("project"))),
    ),
    Case("run dir", "--resume with nothing to resume", _train_into(lambda out: None, resume=True)),
    Case(
        "run dir",
        "a 1-row training file",
        _train_into(
            lambda out: (out.parent / "one.jsonl").write_text(ROW + "\n"), "data.train_file={tmp}/one.jsonl"
        ),
    ),
    Case("loading", "pickle-only weights", _checkpoint(_to_pickle)),
    Case(
        "loading",
        "vitopic.json missing (unfinished run)",
        _checkpoint(lambda d: (d / "vitopic.json").unlink()),
    ),
    Case(
        "loading",
        "vitopic.json labels disagree with config.json",
        _checkpoint(_edit_json("vitopic.json", labels=["ukraine_aid", "gaza", "sport"])),
    ),
    Case(
        "loading",
        "classifier tensors removed",
        _checkpoint(
            _edit_weights(lambda t: [t.pop(k) for k in list(t) if k.startswith("classifier.out_proj")])
        ),
    ),
    Case(
        "loading",
        "NaN in the classifier head",
        _checkpoint(_edit_weights(lambda t: t["classifier.out_proj.weight"].fill_(float("nan")))),
    ),
    Case(
        "loading",
        "model.safetensors truncated",
        _checkpoint(
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:500])
        ),
    ),
    Case("loading", "model_type changed to bert", _checkpoint(_edit_json("config.json", model_type="bert"))),
    Case("loading", "config.json missing", _checkpoint(lambda d: (d / "config.json").unlink())),
    Case("loading", "config.json not JSON", _checkpoint(lambda d: (d / "config.json").write_text("{oops"))),
    Case("loading", "empty vocab.txt", _checkpoint(lambda d: (d / "vocab.txt").write_text(""))),
    Case("loading", "bpe.codes missing", _checkpoint(lambda d: (d / "bpe.codes").unlink())),
    Case(
        "loading",
        "tokenizer_config.json names BertTokenizer",
        _checkpoint(_edit_json("tokenizer_config.json", tokenizer_class="BertTokenizer")),
    ),
    Case(
        "loading",
        "threshold NaN",
        _checkpoint(_edit_json("vitopic.json", thresholds=[0.5, float("nan"), 0.5])),
    ),
    Case("loading", "threshold 1.5", _checkpoint(_edit_json("vitopic.json", thresholds=[0.5, 1.5, 0.5]))),
    Case(
        "loading",
        "duplicate labels",
        _checkpoint(_edit_json("vitopic.json", labels=["gaza", "gaza", "nato"])),
    ),
    Case("loading", "max_length 2", _checkpoint(_edit_json("vitopic.json", max_length=2))),
    Case("loading", "max_length 100,000", _checkpoint(_edit_json("vitopic.json", max_length=100_000))),
    Case("loading", "shard index naming a pickle", _checkpoint(_shard_index("weights.bin"))),
    Case(
        "loading",
        "shard index naming ../../../../etc/passwd",
        _checkpoint(_shard_index("../../../../etc/passwd")),
    ),
    Case("loading", "vocab.txt a link out of the checkpoint", _checkpoint(_link_out("vocab.txt"))),
    Case("loading", "path that does not exist", _load("/nonexistent/dir/model")),
    Case("loading", "Hub id '../x'", _load("../x")),
    Case("loading", "Hub id with a space", _load("org name/model")),
    Case("loading", "Hub id not in the offline cache", _load("vitopic-test/not-cached")),
]


# Issue 26: one text, one answer (every form of a text reads and splits as the clean one), bounded
# work on overlong words, and checkpoints whose tokenizer or ONNX file would fail at prediction.
NATO_GAZA = "Hội nghị NATO khai mạc. Đức gửi thêm Patriot. Ở Gaza, Israel không kích Rafah."


def _same_as_clean(variant: str) -> Callable:
    """Whether `variant` normalises and splits into sentences as NATO_GAZA does."""

    def run(ctx: Context) -> object:
        def read(text: str) -> list[str]:
            return [normalize(s) for s in split_sentences(text)]

        same = read(variant) == read(NATO_GAZA)
        labels = ctx.clf.predict(variant).labels == ctx.clf.predict(NATO_GAZA).labels
        return f"{len(read(variant))} sentences, same as the clean text: {same}; same labels: {labels}"

    return run


def _onnx_file(content: bytes) -> Callable:
    return _checkpoint(lambda d: (d / "model.onnx").write_bytes(content), backend="onnx")


def _added_token(token_id: str) -> Callable[[Path], None]:
    def mutate(d: Path) -> None:
        decoder = json.loads((d / "tokenizer_config.json").read_text("utf-8"))["added_tokens_decoder"]
        decoder[token_id] = {"content": "Ukraine", "special": False}
        edit_json(d / "tokenizer_config.json", added_tokens_decoder=decoder)

    return mutate


CASES += [
    Case(
        "text",
        "NFD paragraph, sentences starting with Đ and Ở",
        _same_as_clean(unicodedata.normalize("NFD", NATO_GAZA)),
    ),
    Case("text", "U+202E inside a word", _same_as_clean(NATO_GAZA.replace("NATO", "NA\u202eTO"))),
    Case(
        "text",
        "zero-width space between sentences",
        _same_as_clean(NATO_GAZA.replace(". Đức", ". \u200bĐức")),
    ),
    Case("text", "full-width 。 and ，", _same_as_clean(NATO_GAZA.replace(". ", "。").replace(", ", "，"))),
    Case(
        "text",
        "combining marks without a base",
        _same_as_clean(NATO_GAZA.replace("NATO", "\u0301NATO \u0323")),
    ),
    Case(
        "text",
        "variation selector and grapheme joiner in words",
        _same_as_clean(NATO_GAZA.replace("Gaza", "Ga\ufe0fz\u034fa")),
    ),
    Case(
        "text",
        "sentences starting with every Vietnamese capital",
        _text(split_sentences, "Mưa. Đà Nẵng. Ở Huế. Ủy ban. Ấn Độ. Ưu tiên. Ơn trời. Ăn tết. Ảnh. Ứng phó."),
    ),
    Case(
        "text",
        "32,000-character unbroken word",
        _text(lambda t: max(map(len, normalize(t).split())), "Ukraine" * 4572),
    ),
    Case("predict", "32,000-character unbroken word", _predict(["Ukraine" * 4572])),
    Case(
        "predict",
        "200,000 characters without punctuation",
        _predict([("viện trợ Kiev hôm nay " * 9100)[:200_000]]),
    ),
    Case("loading", "added token id 70,000 past 64,001 embeddings", _checkpoint(_added_token("70000"))),
    Case(
        "loading",
        "special token not in the vocabulary",
        _checkpoint(_edit_json("tokenizer_config.json", additional_special_tokens=["<x>"])),
    ),
    Case("loading", "garbage model.onnx", _onnx_file(b"garbage")),
    Case("loading", "empty model.onnx (export killed)", _onnx_file(b"")),
]


def outcome(case: Case, ctx: Context) -> str:
    """What happened, with temporary paths masked so the text is stable."""
    try:
        value = case.run(ctx)
        result = str(value) if case.area in ("data", "cli", "text") else f"accepted: {value}"
    except ConfigError as err:  # one line per problem, all of them
        result = f"{type(err).__name__}: {' / '.join(str(err).splitlines())}"
    except Exception as err:  # the point is to record whatever happens
        result = f"{type(err).__name__}: {str(err).splitlines()[0]}"
    return (
        result.replace(str(ctx.tmp), "<tmp>")
        .replace(str(DATA), "<data>")
        .replace(str(ctx.model_dir), "<model>")
        .replace(str(TINY), "<tiny.yaml>")
    )


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
    if case.area == "loading":
        assert result.startswith("CheckpointError"), result
    if case.area == "config":
        assert result.startswith(("ConfigError", "accepted: accepted")), result
    if case.area == "cli":
        assert result.startswith("exit 2: error: "), result
    if case.area == "config" and result.startswith("ConfigError"):
        assert ": " in result and (
            "config.yaml" in result or "nope.yaml" in result or "<command line>" in result
        )
    if case.area == "data" and result.startswith("DataError"):
        assert re.match(r"DataError: <tmp>/rows\.jsonl(:\d+)?: ", result), result
    if os.environ.get("VITOPIC_WRITE_DOCS") is None and DOC.is_file():
        documented = {
            f"{c.area}|{c.name}": line
            for c, line in zip(
                CASES,
                [
                    row.split(" | ", 3)[-1].rstrip(" |")
                    for row in DOC.read_text("utf-8").splitlines()
                    if row.startswith("| ") and not row.startswith("| #")
                ],
                strict=False,
            )
        }
        assert documented.get(f"{case.area}|{case.name}") == result.replace("|", "\\|"), (
            "docs/robustness.md is out of date: regenerate it (see its first lines)"
        )
