import json
import re
import unicodedata

import pytest
from helpers import DATA, LABELS, run_cli

from vitopic.data import DataError, read_jsonl
from vitopic.datacheck import check_corpus, near_duplicate_pairs


def _file(tmp_path, content: str | bytes):
    path = tmp_path / "rows.jsonl"
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        ('{"text": "a", "labels": []}\n{"text": "b", "labels": [}\n', 2, "invalid JSON"),
        ('{"labels": []}\n', 1, "missing or non-string 'text'"),
        ('{"text": 5, "labels": []}\n', 1, "missing or non-string 'text'"),
        ('{"text": "  ", "labels": []}\n', 1, "empty 'text'"),
        ('{"text": "a", "labels": "gaza"}\n', 1, "must be a list of strings"),
        ('{"text": "a"}\n', 1, "must be a list of strings"),
        ('{"text": "a", "labels": ["sport"]}\n', 1, "unknown label"),
        ("[1, 2]\n", 1, "expected a JSON object"),
        (
            '{"id": "x", "text": "a", "labels": []}\n{"id": "x", "text": "b", "labels": []}\n',
            2,
            "duplicate id",
        ),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, line, fragment):
    path = _file(tmp_path, content)
    with pytest.raises(DataError) as err:
        read_jsonl(path, LABELS)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert fragment in str(err.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="no examples"):
        read_jsonl(_file(tmp_path, ""), LABELS)
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "none.jsonl", LABELS)


def test_bom_crlf_and_nfd_are_accepted(tmp_path):
    nfd = unicodedata.normalize("NFD", "Viện trợ cho Kiev")
    rows = [{"text": nfd, "labels": ["ukraine_aid"]}, {"text": "x" * 10_000, "labels": []}]
    body = "\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n"
    examples = read_jsonl(_file(tmp_path, b"\xef\xbb\xbf" + body.encode()), LABELS)
    assert [ex.text for ex in examples] == ["Viện trợ cho Kiev", "x" * 10_000]
    assert examples[0].labels == ("ukraine_aid",)
    with pytest.raises(DataError, match="not Unicode NFC"):
        read_jsonl(tmp_path / "rows.jsonl", LABELS, require_nfc=True)


def test_shipped_corpus_passes_the_check():
    report = check_corpus(DATA, LABELS)
    assert report.errors == []
    sizes = report.sizes
    assert sizes["train"] + sizes["dev"] + sizes["test"] >= 2400
    totals = {lab: sum(c[lab] for s, c in report.counts.items() if s != "showcase") for lab in LABELS}
    assert min(totals.values()) >= 500, totals
    assert sum(c["(2+ labels)"] for s, c in report.counts.items() if s != "showcase") >= 300
    assert sum(c["(none)"] for s, c in report.counts.items() if s != "showcase") >= 1000
    assert report.max_tokens <= 256


def test_data_check_cli_reports_cross_split_near_duplicates(tmp_path):
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.jsonl").write_text(
            (DATA / f"{split}.jsonl").read_text("utf-8").splitlines()[0] + "\n", "utf-8"
        )
    first = json.loads((DATA / "train.jsonl").read_text("utf-8").splitlines()[0])
    first["id"] = "copy"
    first["text"] = first["text"].rstrip(".") + " !"
    with open(tmp_path / "dev.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(first, ensure_ascii=False) + "\n")
    run = run_cli("data", "check", tmp_path)
    assert run.code == 1
    assert "near-duplicates across splits" in run.out
    assert f"{tmp_path / 'dev'}.jsonl:2" in run.out


def test_near_duplicates_are_found_and_distinct_sentences_are_not():
    from vitopic.data import Example

    a = Example("a", "Mỹ công bố gói viện trợ quân sự mới trị giá 2 tỷ USD cho Ukraine hôm thứ Ba.", (), 1)
    b = Example("b", "Mỹ công bố gói viện trợ quân sự mới trị giá 2 tỷ USD cho Ukraine hôm thứ Tư.", (), 2)
    c = Example("c", "Đội tuyển Việt Nam thắng Thái Lan ở chung kết ASEAN Cup 2024.", (), 3)
    pairs = near_duplicate_pairs([("x", a), ("y", b), ("z", c)])
    assert [(p[0][1].id, p[1][1].id) for p in pairs] == [("a", "b")]


def test_thresholds_prefer_0_5_unless_clearly_better():
    import numpy as np

    from vitopic.metrics import tune_thresholds

    truth = np.array([[1]] * 10 + [[0]] * 10)
    # One positive scored 0.06: the exact F1 maximum sits at 0.05, within one error of 0.5's.
    flat = np.array([[0.99]] * 9 + [[0.06]] + [[0.01]] * 10)
    assert tune_thresholds(flat, truth).tolist() == [0.5]
    # Four positives at 0.3: a threshold below 0.3 is clearly better and is chosen.
    clear = np.array([[0.99]] * 6 + [[0.3]] * 4 + [[0.01]] * 10)
    assert tune_thresholds(clear, truth)[0] <= 0.3
    assert tune_thresholds(clear, np.zeros((20, 1))).tolist() == [0.5]


def test_metrics_are_typed_and_keep_the_metric_json_shape():
    import evaluate

    from vitopic.metrics import METRIC_DIR, Metrics, multilabel_metrics

    predicted, gold = [[1, 0], [1, 1], [0, 0]], [[1, 1], [1, 0], [0, 0]]
    metrics = multilabel_metrics(predicted, gold, ["a", "b"])
    raw = evaluate.load(str(METRIC_DIR)).compute(
        predictions=predicted, references=gold, label_names=["a", "b"]
    )
    assert json.dumps(metrics.to_dict()) == json.dumps(raw)  # keys, order and values
    assert Metrics.from_dict(json.loads(json.dumps(raw))) == metrics
    assert (metrics.exact_match, metrics.per_label["a"].f1, metrics.per_label["b"].fp) == (1 / 3, 1.0, 1)
    assert metrics.format("x").splitlines()[1] == (
        "  a            P 1.000  R 1.000  F1 1.000  (tp 2 fp 0 fn 0 tn 1, support 2)"
    )


def test_data_check_takes_labels_and_segmenter_from_a_config(tmp_path, capsys):
    from vitopic.cli import main

    for split in ("train", "dev", "test"):
        rows = [
            line
            for line in (DATA / f"{split}.jsonl").read_text("utf-8").splitlines()
            if "ukraine_aid" not in line
        ][:20]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(rows) + "\n", "utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  dir: {tmp_path}\n  labels: [gaza, nato]\ntext:\n  segmenter: none\n")
    assert main(["data", "check", "--config", str(config)]) == 0
    header, train = capsys.readouterr().out.splitlines()[:2]
    assert header.split() == ["split", "n", "gaza", "nato", "(none)", "(2+", "labels)"]
    assert len(header) == len(train)  # right-aligned columns end together
    with open(tmp_path / "dev.jsonl", "a", encoding="utf-8") as f:
        f.write('{"text": "Viện trợ cho Kiev", "labels": ["ukraine_aid"]}\n')
    assert main(["data", "check", "--config", str(config)]) == 1
    assert "unknown label(s) ['ukraine_aid']; known: ['gaza', 'nato']" in capsys.readouterr().out


def test_csv_and_saved_datasets_read_like_jsonl(tmp_path):
    import csv

    import datasets

    from vitopic.config import load_config
    from vitopic.data import read_examples
    from vitopic.training import Splits

    rows = read_jsonl(DATA / "dev.jsonl", LABELS)
    with open(tmp_path / "dev.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "labels"])
        writer.writerows([ex.id, ex.text, ";".join(ex.labels)] for ex in rows)
    datasets.Dataset.from_dict(
        {
            "id": [ex.id for ex in rows],
            "text": [ex.text for ex in rows],
            "labels": [list(ex.labels) for ex in rows],
        }
    ).save_to_disk(str(tmp_path / "dev_ds"))
    for name in ("dev.csv", "dev_ds"):
        again = read_examples(tmp_path / name, LABELS)
        assert [(e.id, e.text, e.labels) for e in again] == [(e.id, e.text, e.labels) for e in rows]
    cfg = load_config(
        None,
        [
            f"data.dir={DATA}",
            f"data.dev_file={tmp_path / 'dev.csv'}",
            f"data.test_file={tmp_path / 'dev_ds'}",
        ],
    )
    splits = Splits.load(cfg.data)
    assert len(splits.dev) == len(splits.test) == len(rows)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,label\na,gaza\n", "x.csv:1: a CSV dataset needs 'text' and 'labels' columns"),
        ("text,labels\na,gaza\nb,sport\n", "x.csv:3: unknown label(s) ['sport']"),
        ("text,labels\na,gaza,extra\n", "x.csv:2: more fields than the header has"),
        ("text,labels\n,gaza\n", "x.csv:2: empty 'text'"),
    ],
)
def test_csv_errors_name_file_and_line(tmp_path, content, message):
    from vitopic.data import read_examples

    (tmp_path / "x.csv").write_text(content, "utf-8")
    with pytest.raises(DataError, match=re.escape(message)):
        read_examples(tmp_path / "x.csv", LABELS)


def test_saved_dataset_errors(tmp_path):
    import datasets

    from vitopic.data import read_examples

    split = {"text": ["Kiev", "Gaza"], "labels": [["ukraine_aid"], ["sport"]]}
    datasets.Dataset.from_dict(split).save_to_disk(str(tmp_path / "one"))
    with pytest.raises(DataError, match=re.escape("one[row 1]: unknown label(s) ['sport']")):
        read_examples(tmp_path / "one", LABELS)
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(split)}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(DataError, match="a DatasetDict with splits \\['train'\\]"):
        read_examples(tmp_path / "dict", LABELS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a readable dataset saved with save_to_disk"):
        read_examples(tmp_path / "empty", LABELS)
