"""config -> train -> save -> reload -> predict, on the shipped corpus with the tiny config."""

import json

import yaml
from helpers import LABELS, ROOT
from transformers import pipeline

from vitopic import TopicClassifier
from vitopic.cli import main
from vitopic.modelcard import validate_card


def test_checkpoint_is_an_ordinary_transformers_checkpoint(trained_dir):
    config = json.loads((trained_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "ukraine_aid", "1": "gaza", "2": "nato"}
    assert config["label2id"] == {"ukraine_aid": 0, "gaza": 1, "nato": 2}
    assert config["problem_type"] == "multi_label_classification"
    assert config["tokenizer_class"] == "PhobertTokenizer"
    assert config["max_position_embeddings"] == 258 and config["pad_token_id"] == 1
    assert (trained_dir / "model.safetensors").is_file()
    assert not list(trained_dir.glob("*.bin"))
    tok_config = json.loads((trained_dir / "tokenizer_config.json").read_text())
    assert tok_config["model_max_length"] == 256
    assert {"vocab.txt", "bpe.codes"} <= {p.name for p in trained_dir.iterdir()}
    meta = json.loads((trained_dir / "vitopic.json").read_text())
    assert meta["labels"] == LABELS and meta["segmenter"] == "rdrsegmenter"
    assert len(meta["thresholds"]) == 3 and all(0 < t < 1 for t in meta["thresholds"])


def test_plain_pipeline_loads_it_without_vitopic(trained_dir):
    clf = pipeline("text-classification", model=str(trained_dir), top_k=None)
    out = clf(
        ["Các đồng_minh NATO cam_kết gửi thêm hệ_thống phòng_không cho Ukraine ."],
        truncation=True,
        max_length=256,
    )
    assert {d["label"] for d in out[0]} == set(LABELS)
    assert all(0 <= d["score"] <= 1 for d in out[0])


def test_reload_and_predict_learns_the_topics(classifier):
    texts = [
        "Quốc hội Mỹ thông qua gói viện trợ quân sự 61 tỷ USD cho Ukraine.",
        "Israel tiếp tục không kích Rafah ở miền nam Dải Gaza.",
        "Hội nghị thượng đỉnh NATO tại Washington kỷ niệm 75 năm thành lập liên minh.",
        "Giá xăng trong nước giảm nhẹ từ 15 giờ chiều nay.",
    ]
    results = classifier.predict(texts)
    assert len(results) == 4
    for r in results:
        assert set(r.scores) == set(LABELS) and all(0 <= s <= 1 for s in r.scores.values())
        assert set(r.labels) <= set(LABELS)
    assert "ukraine_aid" in results[0].labels
    assert "gaza" in results[1].labels
    assert "nato" in results[2].labels
    assert results[3].labels == []
    single = classifier.predict(texts[1])
    assert single.labels == results[1].labels


def test_run_outputs(trained_dir):
    metrics = json.loads((trained_dir / "metrics.json").read_text())
    assert {"dev", "test", "showcase_predictions", "thresholds", "baseline"} <= set(metrics)
    assert 0 <= metrics["dev"]["macro_f1"] <= 1
    assert len(metrics["showcase_predictions"]) == 8
    assert all("predicted" in row for row in metrics["showcase_predictions"])
    assert metrics["baseline"]["dev"]["macro_f1"] > 0.5
    for name in ("report.md", "config.yaml", "plots/pr-dev.png", "plots/loss.png"):
        assert (trained_dir / name).is_file(), name
    assert (trained_dir / "plots" / "pr-dev.png").read_bytes()[:4] == b"\x89PNG"
    resolved = yaml.safe_load((trained_dir / "config.yaml").read_text())
    assert resolved["training"]["epochs"] == 4.0


def test_model_card(trained_dir):
    card = (trained_dir / "README.md").read_text()
    assert validate_card(card) == []
    header = yaml.safe_load(card.split("---")[1])
    assert header["language"] == ["vi"] and header["license"] == "mit"
    assert header["pipeline_tag"] == "text-classification"
    assert header["model-index"][0]["results"][0]["metrics"][0]["name"] == "macro F1"
    for phrase in (
        "Intended use",
        "word-segmented",
        "256",
        "never its stance",
        "2022–2025",
        'pipeline("text-classification"',
        "TopicClassifier",
        "Dev scores are optimistic",
        "Hyper-parameters: `learning_rate` 0.001",
        "`model.hidden_size` 64",
        "Sentences: train 6,989, dev 876, test 875, showcase 8",
        "the checkpoint kept is from step",
        "transformers 5.",
    ):
        assert phrase in card, phrase
    training = json.loads((trained_dir / "metrics.json").read_text())["training"]
    assert training["steps"] == 700 and training["versions"]["torch"].startswith("2.13")


def test_cli_evaluate_on_a_labeled_file(trained_dir, tmp_path, capsys):
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained_dir),
                "--data",
                str(ROOT / "corpus/test.jsonl"),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "macro-F1" in capsys.readouterr().out
    assert (tmp_path / "eval-test.json").is_file() and (tmp_path / "plots/eval-test.png").is_file()


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  batch_size: 0\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert capsys.readouterr().err == f"error: {bad}: training.batch_size: must be > 0, got 0\n"


def test_from_pretrained_on_the_run_dir_equals_the_fixture(trained_dir, classifier):
    again = TopicClassifier.from_pretrained(str(trained_dir))
    text = "Tổng thư ký Rutte kêu gọi các đồng minh tăng chi tiêu quốc phòng."
    assert again.predict(text).scores == classifier.predict(text).scores
