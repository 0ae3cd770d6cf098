"""The card, report.md and `vitopic baseline` describe the user's model (issue 27 §3): the shipped
labels' and corpus's words only for a model trained on them; the model's own segmenter, data name
and sentences; no keyword-rule rows for labels that have no rule."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import DATA, LABELS, run_cli

from vitopic.baseline import KEYWORD_SUFFIX, format_baselines, keyword_metrics
from vitopic.checkpoint import Metadata
from vitopic.config import Config, load_config, save_config
from vitopic.data import Example, read_examples
from vitopic.labels import KNOWN, UNKNOWN_DESCRIPTION
from vitopic.metrics import Metrics, multilabel_metrics
from vitopic.modelcard import (
    SHIPPED_DATA_CARD,
    TrainingData,
    is_shipped_corpus,
    render_card,
    training_data,
    validate_card,
)
from vitopic.report import write_run_outputs
from vitopic.training import TrainResult

OWN_LABELS = ["kinh_te", "the_thao"]
OWN_ROWS = {
    "train": [
        ("Giá vàng trong nước tăng mạnh phiên sáng nay.", ["kinh_te"]),
        ("Ngân hàng Nhà nước giữ nguyên lãi suất điều hành.", ["kinh_te"]),
        ("Xuất khẩu gạo quý ba đạt mức kỷ lục.", ["kinh_te"]),
        ("Chứng khoán giảm điểm do khối ngoại bán ròng.", ["kinh_te"]),
        ("Đội tuyển bóng đá thắng Thái Lan 2-0 tại Mỹ Đình.", ["the_thao"]),
        ("Vận động viên bơi lội giành huy chương vàng SEA Games.", ["the_thao"]),
        ("Câu lạc bộ Hà Nội vô địch giải bóng đá quốc gia.", ["the_thao"]),
        ("Tay vợt trẻ vào bán kết giải quần vợt trẻ châu Á.", ["the_thao"]),
        ("Nhà tài trợ chi nghìn tỷ đồng cho giải bóng đá quốc gia.", ["kinh_te", "the_thao"]),
        ("Trời mưa lớn ở Hà Nội suốt đêm qua.", []),
        ("Lễ hội hoa xuân khai mạc tại công viên.", []),
        ("Bộ Giáo dục công bố lịch thi tốt nghiệp.", []),
    ],
    "dev": [
        ("Bảo tàng mở cửa miễn phí dịp lễ.", []),
        ("Lãi suất tiết kiệm tăng ở nhiều ngân hàng.", ["kinh_te"]),
        ("Đội tuyển bóng chuyền nữ thắng trận mở màn.", ["the_thao"]),
        ("Giá xăng giảm lần thứ ba trong tháng.", ["kinh_te"]),
    ],
    "test": [
        ("Tỷ giá đô la Mỹ tăng nhẹ.", ["kinh_te"]),
        ("Cầu thủ ghi bàn thắng quyết định phút cuối.", ["the_thao"]),
        ("Học sinh được nghỉ Tết mười ngày.", []),
    ],
}
OWN_CONFIG = {
    "data": {
        "labels": OWN_LABELS,
        "name": "tin-viet",
        "label_descriptions": {"kinh_te": "the economy: prices, banks, trade | markets"},
        "showcase_file": None,
    },
    "text": {"segmenter": "pyvi"},
}
# What the card says only of the shipped labels and corpus.
SHIPPED_WORDS = [
    "ukraine_aid",
    "Ukraine",
    "NATO",
    "never its stance",
    "2022–2025",
    "written for the project",
    "RDRSegmenter",
    "vitopic dev",
    "news-topic corpus",
    *(entry.description for entry in KNOWN.values()),
]


def _write_own_data(directory: Path) -> Path:
    """The user's corpus (train, dev, test JSONL) and a config for it (config.yaml)."""
    directory.mkdir(exist_ok=True)
    for split, rows in OWN_ROWS.items():
        lines = [
            json.dumps({"id": f"{split}-{i}", "text": text, "labels": labels}, ensure_ascii=False)
            for i, (text, labels) in enumerate(rows)
        ]
        (directory / f"{split}.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump({**OWN_CONFIG, "data": {**OWN_CONFIG["data"], "dir": str(directory)}}))
    return config


def _rows(examples: list[Example]) -> list[dict]:
    """Dev predictions as `evaluate_examples` gives them, every one right."""
    return [{"text": ex.text, "labels": list(ex.labels), "predicted": list(ex.labels)} for ex in examples]


def _perfect(examples: list[Example], labels: list[str]) -> Metrics:
    targets = np.array([[lab in ex.labels for lab in labels] for ex in examples])
    return multilabel_metrics(targets, targets, labels)


FACTS = {  # a run's training facts, as `report.training_facts` gives them
    "hyperparameters": {"learning_rate": 0.001},
    "data_sizes": {"train": 12, "dev": 4},
    "steps": 10,
    "best_step": 10,
    "versions": {"vitopic": "0"},
    "license": None,
}


def _facts(cfg: Config) -> dict:
    """The training facts with the card's facts about the data added (as `write_run_outputs` does)."""
    dev = read_examples(cfg.data.path("dev.jsonl"), cfg.data.labels)
    return {**FACTS, "data": training_data(cfg.data, _rows(dev), cfg.text.segmenter)}


def _card(cfg: Config, facts: dict) -> str:
    meta = Metadata(cfg.data.labels, "multi_label", cfg.text.segmenter, 256, [0.5] * len(cfg.data.labels))
    dev = read_examples(cfg.data.path("dev.jsonl"), cfg.data.labels)
    return render_card(meta, {"dev": _perfect(dev, cfg.data.labels)}, "m", training=facts)


def test_a_card_for_labels_of_your_own_says_nothing_of_the_shipped_ones(tmp_path):
    cfg = load_config(_write_own_data(tmp_path / "own"))
    facts = _facts(cfg)
    card = _card(cfg, facts)
    assert validate_card(card) == []
    for words in SHIPPED_WORDS:
        assert words not in card, words
    header = yaml.safe_load(card.split("---")[1])
    assert header["model-index"][0]["results"][0]["dataset"] == {
        "name": "tin-viet dev",
        "type": "tin-viet",
        "split": "dev",
    }
    assert "Data: `tin-viet`." in card
    assert "| `kinh_te` | the economy: prices, banks, trade \\| markets |" in card
    assert f"| `the_thao` | {UNKNOWN_DESCRIPTION} |" in card
    assert "word segmentation with pyvi's `ViTokenizer.tokenize` (segmenter `pyvi`)" in card
    assert "prepare the text yourself as above, segmenting it with pyvi's" in card
    # the usage examples: the first dev sentence the model labels (right), as a user passes it
    # and as the model reads it
    assert 'clf.predict("Lãi suất tiết kiệm tăng ở nhiều ngân hàng.")' in card
    assert 'clf("Lãi_suất tiết_kiệm tăng ở nhiều ngân_hàng .", truncation=True' in card
    assert facts["data"]["shipped"] is False


def test_a_known_label_name_on_data_of_your_own_gets_no_registry_prose():
    card = render_card(
        Metadata(["gaza", "the_thao"], "multi_label", "pyvi", 256, [0.5, 0.5]),
        {},
        "m",
        training={**FACTS, "data": asdict(TrainingData(name="tin-viet"))},
    )
    assert f"| `gaza` | {UNKNOWN_DESCRIPTION} |" in card and KNOWN["gaza"].description not in card


def test_the_shipped_corpus_keeps_its_prose():
    cfg = load_config(None, [f"data.dir={DATA}", "text.segmenter=none"])
    assert is_shipped_corpus(cfg.data)
    card = _card(cfg, _facts(cfg))
    assert validate_card(card) == []
    for words in ("never its stance", "2022–2025", "written for the project", "news-topic corpus"):
        assert words in card, words
    for name, entry in KNOWN.items():
        assert f"| `{name}` | {entry.description} |" in card
    assert yaml.safe_load(card.split("---")[1])["model-index"][0]["results"][0]["dataset"]["name"] == (
        "vitopic dev"
    )
    assert "no word segmentation (segmenter `none`" in card


def test_the_shipped_words_restate_the_data_card():
    text = (DATA / "README.md").read_text("utf-8")
    assert text.startswith(SHIPPED_DATA_CARD)
    assert "Events from 2022 to 2025" in text and "written for the project" in text


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.labels=[gaza, nato]"],  # the corpus with other labels
        ["data.train_file=dev.jsonl"],  # another file of it
    ],
)
def test_anything_but_the_shipped_corpus_and_labels_is_data_of_your_own(overrides, tmp_path):
    assert not is_shipped_corpus(load_config(None, [f"data.dir={DATA}", *overrides]).data)
    (tmp_path / "train.jsonl").write_text((DATA / "train.jsonl").read_text("utf-8"), "utf-8")
    assert not is_shipped_corpus(load_config(None, [f"data.dir={tmp_path}"], check_files=False).data)


def test_the_card_uses_the_models_own_segmenter_and_a_neutral_sentence_when_none_was_recorded():
    card = render_card(Metadata(["kinh_te"], "multi_label", "underthesea", 256, [0.5]), {}, "m")
    assert "underthesea's `word_tokenize" in card and "RDRSegmenter" not in card
    assert 'clf.predict("Quốc hội thông qua luật mới tại kỳ họp sáng nay.")' in card


def _keyword_results(labels: list[str]) -> dict[str, Metrics]:
    examples = [
        Example("1", "Israel không kích Rafah ở Dải Gaza.", ("gaza",), 1),
        Example("2", "Đội tuyển bóng đá thắng 2-0.", ("the_thao",), 2),
        Example("3", "Giá vàng tăng.", ("kinh_te",), 3),
    ]
    examples = [ex for ex in examples if set(ex.labels) <= set(labels)]
    return {
        "dev": _perfect(examples, labels),
        "dev" + KEYWORD_SUFFIX: keyword_metrics(examples, labels),
    }


def test_keyword_rules_are_left_out_for_labels_without_rules():
    lines = format_baselines(_keyword_results(OWN_LABELS))
    assert lines[0].startswith("TF-IDF+LR, dev: macro-F1 1.0000")
    assert not [line for line in lines if "keyword rules, dev" in line]
    assert lines[-1] == "(keyword rules left out: vitopic has none for kinh_te, the_thao)"
    mixed = "\n".join(format_baselines(_keyword_results(["gaza", "the_thao"])))
    keyword = mixed[mixed.index("keyword rules, dev") :]
    assert "gaza" in keyword and "the_thao" not in keyword.split("\n(")[0]
    assert "(no keyword rule for the_thao: the rules never predict these labels" in mixed
    assert not [line for line in format_baselines(_keyword_results(LABELS[1:2])) if line.startswith("(")]


def test_report_and_card_of_a_run_on_data_of_your_own(tmp_path):
    """write_run_outputs over a staging directory, as training leaves it (no model needed)."""
    cfg = load_config(_write_own_data(tmp_path / "own"))
    out = tmp_path / "run" / ".staging"
    out.mkdir(parents=True)
    save_config(cfg, out / "config.yaml")
    Metadata(OWN_LABELS, "multi_label", "pyvi", 256, [0.5, 0.5]).save(out)
    (out / "config.json").write_text(
        json.dumps({"id2label": dict(enumerate(OWN_LABELS)), "problem_type": "multi_label_classification"})
    )
    dev = read_examples(cfg.data.path("dev.jsonl"), OWN_LABELS)
    targets = np.array([[lab in ex.labels for lab in OWN_LABELS] for ex in dev], dtype=float)
    result = TrainResult(
        tmp_path / "run",
        [0.5, 0.5],
        _perfect(dev, OWN_LABELS),
        None,
        [{"step": 1, "loss": 0.7}],
        targets,
        targets,
        _rows(dev),
    )
    write_run_outputs(out, result, FACTS, None, baseline=_keyword_results(OWN_LABELS))
    report = (out / "report.md").read_text("utf-8")
    assert "baseline TF-IDF+LR, dev" in report and "keyword rules, dev" not in report
    assert "(keyword rules left out: vitopic has none for kinh_te, the_thao)" in report
    card = (out / "README.md").read_text("utf-8")
    for words in SHIPPED_WORDS:
        assert words not in card, words
    assert (
        "Baselines on the same splits (macro-F1): TF-IDF+LR, dev 1.000; keyword rules left out: "
        "vitopic has none for kinh_te, the_thao." in card
    )
    assert "segmenter `pyvi`" in card and "Data: `tin-viet`." in card
    recorded = json.loads((out / "metrics.json").read_text("utf-8"))["training"]["data"]
    assert recorded["name"] == "tin-viet" and recorded["example"] == OWN_ROWS["dev"][1][0]


def test_cli_baseline_on_data_of_your_own_prints_no_keyword_rows(tmp_path):
    ran = run_cli("baseline", "--config", _write_own_data(tmp_path / "own"))
    assert ran.code == 0, ran.err
    assert "TF-IDF+LR, dev: macro-F1" in ran.out and "TF-IDF+LR, test: macro-F1" in ran.out
    assert "keyword rules, " not in ran.out and "(keyword rules left out:" in ran.out
