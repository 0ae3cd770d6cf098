"""The predict API and checkpoint loading: bad inputs, long inputs, threads, the Hub cache, safety."""

import json
import os
import subprocess
import sys
import unicodedata
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from helpers import LABELS, ROOT, edit_json, place_in_hub_cache, run_cli

from vitopic import TopicClassifier
from vitopic.checkpoint import CheckpointError
from vitopic.hub import push_to_hub

GAZA = "Israel tiếp tục không kích Rafah ở miền nam Dải Gaza, khiến hàng chục người thiệt mạng."


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "<p></p>", "\u200b"])
def test_empty_inputs_get_an_explicit_empty_result(classifier, text):
    result = classifier.predict([text, GAZA])
    assert result[0].empty and result[0].labels == []
    assert result[0].scores == dict.fromkeys(LABELS, 0.0)
    assert not result[1].empty and "gaza" in result[1].labels


@pytest.mark.parametrize(
    ("texts", "fragment"),
    [
        (None, "got NoneType"),
        ([GAZA, None], r"texts\[1\] is NoneType"),
        ([GAZA, 3], r"texts\[1\] is int"),
        (["a", b"bytes"], r"texts\[1\] is bytes"),
        (42, "got int"),
        ({"a": 1}, "got dict"),
    ],
)
def test_non_strings_raise_type_error_naming_the_index(classifier, texts, fragment):
    with pytest.raises(TypeError, match=fragment):
        classifier.predict(texts)


def test_bad_arguments(classifier):
    with pytest.raises(ValueError, match="batch_size"):
        classifier.predict([GAZA], batch_size=0)
    with pytest.raises(ValueError, match="threshold"):
        classifier.predict([GAZA], threshold=1.5)
    assert classifier.predict([]) == []


def test_nfd_html_emoji_and_foreign_text(classifier):
    nfd = unicodedata.normalize("NFD", GAZA)
    html = f"<div><b>{GAZA}</b>&nbsp;</div>"
    results = classifier.predict(
        [
            GAZA,
            nfd,
            html,
            "🇺🇦🔥 " + GAZA + " 🙏",
            "😀😀",
            "The weather in London is mild today.",
            "今日は晴れです。",
        ]
    )
    assert results[1].scores == pytest.approx(results[0].scores)
    assert results[2].scores == pytest.approx(results[0].scores)
    assert "gaza" in results[3].labels
    for r in results[4:]:
        assert not r.empty and all(0 <= s <= 1 for s in r.scores.values())


def test_threshold_override(classifier):
    assert set(classifier.predict(GAZA, threshold=0.0).labels) == set(LABELS)
    assert classifier.predict(GAZA, threshold=1.0).labels == []


def test_long_input_is_split_never_crashes(classifier):
    sentences = [
        GAZA,
        "Giá vàng trong nước tăng mạnh phiên sáng nay.",
        "Hội nghị thượng đỉnh NATO tại Washington kỷ niệm 75 năm thành lập liên minh.",
    ]
    article = " ".join(sentences * 40)
    result = classifier.predict(article)
    assert len(result.pieces) >= 3
    assert "gaza" in result.labels and "nato" in result.labels
    for label in LABELS:
        assert result.scores[label] == pytest.approx(max(p.scores[label] for p in result.pieces))
    # One "sentence" with no boundaries, far over 256 tokens, goes through windows.
    no_stops = " ".join(["viện trợ quân sự cho Kiev"] * 200)
    windows = classifier.predict(no_stops)
    assert len(windows.pieces) > 1 and "ukraine_aid" in windows.labels
    assert classifier.predict([article, "Trời mưa."])[1].pieces == []


def test_each_sentence_is_scored_unless_told_otherwise(classifier):
    paragraph = f"NATO họp tại Brussels. {GAZA}"
    split = classifier.predict(paragraph)
    assert [p.text for p in split.pieces] == ["NATO họp tại Brussels.", GAZA]
    # each piece is scored alone, and the input gets every label's highest piece score
    assert split.pieces[1].scores == pytest.approx(classifier.predict(GAZA).scores)
    for label in LABELS:
        assert split.scores[label] == pytest.approx(max(p.scores[label] for p in split.pieces))
    whole = classifier.predict(paragraph, split="none")
    assert whole.pieces == [] and whole.scores != split.scores
    with pytest.raises(ValueError, match="split must be one of"):
        classifier.predict(paragraph, split="paragraph")


def test_results_as_plain_data_probabilities_and_call(classifier):
    texts = [GAZA, "", "Trời mưa. NATO họp tại Brussels."]
    results = classifier(texts)
    assert [r.labels for r in results] == [r.labels for r in classifier.predict(texts)]
    restored = json.loads(json.dumps([r.to_dict() for r in results]))
    assert restored[1] == {"labels": [], "scores": dict.fromkeys(LABELS, 0.0), "pieces": [], "empty": True}
    assert [p["text"] for p in restored[2]["pieces"]] == ["Trời mưa.", "NATO họp tại Brussels."]
    piece = results[2].pieces[1]
    assert piece.to_dict() == {"text": "NATO họp tại Brussels.", "scores": piece.scores}
    proba = classifier.predict_proba(texts)
    assert proba.shape == (3, 3) and proba.dtype == np.float32
    assert proba[0].tolist() == np.float32([results[0].scores[lab] for lab in LABELS]).tolist()
    assert classifier.predict_proba([]).shape == (0, 3)


def test_top_k_keeps_the_highest_scores_and_only_their_labels(classifier):
    paragraph = f"NATO họp tại Brussels. {GAZA}"
    every = classifier.predict(paragraph, threshold=0.0)  # every label chosen
    best = sorted(every.scores, key=every.scores.get, reverse=True)[:2]
    top = classifier.predict(paragraph, threshold=0.0, top_k=2)
    assert list(top.scores) == best and top.scores == {lab: every.scores[lab] for lab in best}
    assert top.labels == [lab for lab in LABELS if lab in best]  # labels and scores agree
    assert [len(p.scores) for p in top.pieces] == [2, 2]
    assert classifier.predict(paragraph, top_k=len(LABELS)).scores == classifier.predict(paragraph).scores
    empty = classifier.predict(["", GAZA], top_k=1)
    assert empty[0].scores == {LABELS[0]: 0.0} and empty[0].labels == []
    assert empty[1].labels == ["gaza"] == list(empty[1].scores)


def test_device_is_where_the_model_runs(classifier, monkeypatch):
    assert classifier.device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # a GPU here: the exports still refuse it
    for backend in ("onnx", "onnx-int8", "ct2-int8"):
        with pytest.raises(ValueError, match=f"backend '{backend}' runs on the CPU"):
            TopicClassifier.from_pretrained("/never/read", device="cuda", backend=backend)


def test_loading_shows_no_progress_bar(trained_dir, capfd):
    from transformers.utils import logging as transformers_logging

    was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()  # as in a fresh Python session
    try:
        TopicClassifier.from_pretrained(trained_dir)
        assert transformers_logging.is_progress_bar_enabled()  # left as it was
    finally:
        if not was_on:
            transformers_logging.disable_progress_bar()
    assert "Loading weights" not in capfd.readouterr().err


@pytest.mark.slow
@pytest.mark.slow
def test_a_five_megabyte_input_is_answered(classifier):
    """Once quadratic (1 MB took 95 s, 5 MB never ended); the text steps' linear scaling is tested
    without a clock in test_text.py, this checks the whole input is read and labelled."""
    paragraph = f"{GAZA} Quân đội Ukraine nhận thêm viện trợ quân sự từ Mỹ hôm thứ Hai! "
    result = classifier.predict(paragraph * (5_000_000 // len(paragraph.encode())))
    assert {"gaza", "ukraine_aid"} <= set(result.labels) and len(result.pieces) > 50_000


def test_bad_option_types(classifier):
    for kwargs in (
        {"batch_size": 2.0},
        {"batch_size": "4"},
        {"batch_size": None},
        {"batch_size": True},
        {"threshold": "0.5"},
        {"threshold": float("nan")},
        {"top_k": 0},
        {"top_k": True},
        {"top_k": 1.0},
    ):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            classifier.predict([GAZA], **kwargs)
    for device, message in (
        ("banana", "not a torch device"),
        ("cuda:7", "not available"),
        ("meta", "runs on 'cpu', 'cuda' or 'mps'"),
    ):
        with pytest.raises(ValueError, match=message):
            TopicClassifier.from_pretrained("/never/read", device=device)


def test_a_forked_child_after_predict_does_not_hang(classifier):
    import select
    import signal

    expected = classifier.predict([GAZA] * 40)[0].labels  # the parent ran torch's thread pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: predict, report, leave at once
        os.write(write, json.dumps(classifier.predict([GAZA] * 40)[0].labels).encode())
        os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 120)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert ready, "the forked child hung"
    assert json.loads(os.read(read, 10_000)) == expected


def test_batches_give_the_same_scores_as_single_calls(classifier):
    texts = [
        GAZA,
        "Trời mưa.",
        "NATO họp ở Brussels về chi tiêu quốc phòng 5% GDP.",
        "Quốc hội Mỹ thông qua gói viện trợ 61 tỷ USD cho Kiev.",
    ]
    batched = classifier.predict(texts, batch_size=3)
    for text, result in zip(texts, batched, strict=True):
        assert classifier.predict(text).scores == pytest.approx(result.scores, abs=1e-5)


def test_threads_share_one_classifier(classifier):
    texts = [GAZA, "Trời mưa.", "NATO họp ở Brussels.", "Viện trợ cho Kiev."] * 5
    expected = [r.labels for r in classifier.predict(texts)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: classifier.predict(t).labels, texts * 3))
    assert results == expected * 3


def test_segmenter_override_warns(trained_dir):
    with pytest.warns(UserWarning, match="overrides 'rdrsegmenter'"):
        clf = TopicClassifier.from_pretrained(trained_dir, segmenter="none")
    assert clf.segmenter == "none"


def test_pickle_only_checkpoint_is_refused(model_copy):
    from safetensors.torch import load_file

    weights = load_file(model_copy / "model.safetensors")
    (model_copy / "model.safetensors").unlink()
    torch.save(weights, model_copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="only pickle weights"):
        TopicClassifier.from_pretrained(model_copy)


def test_unfinished_checkpoint_is_refused(model_copy):
    (model_copy / "vitopic.json").unlink()
    with pytest.raises(CheckpointError, match="not a finished vitopic checkpoint"):
        TopicClassifier.from_pretrained(model_copy)


def test_metadata_disagreeing_with_config_is_refused(model_copy):
    meta = json.loads((model_copy / "vitopic.json").read_text())
    meta["labels"] = ["ukraine_aid", "gaza", "sport"]
    (model_copy / "vitopic.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"disagree with config\.json"):
        TopicClassifier.from_pretrained(model_copy)


def test_not_a_model(tmp_path):
    with pytest.raises(CheckpointError, match="neither a local directory nor a Hub id"):
        TopicClassifier.from_pretrained(tmp_path / "missing" / "deep" / "path")


def test_remote_code_named_by_a_checkpoint_never_runs(model_copy, tmp_path):
    """config.json and tokenizer_config.json point at code in the repo (`auto_map`), as a
    hostile checkpoint would: loading and predicting never imports it."""
    marker = tmp_path / "ran"
    (model_copy / "evil.py").write_text(f"open({str(marker)!r}, 'w').close()\nfrom transformers import *\n")
    edit_json(
        model_copy / "config.json",
        auto_map={
            "AutoConfig": "evil.RobertaConfig",
            "AutoModelForSequenceClassification": "evil.RobertaForSequenceClassification",
        },
    )
    edit_json(
        model_copy / "tokenizer_config.json", auto_map={"AutoTokenizer": ["evil.PhobertTokenizer", None]}
    )
    clf = TopicClassifier.from_pretrained(model_copy)
    assert clf.predict("NATO họp.").scores and not marker.exists()


@pytest.mark.slow
def test_loading_by_hub_id_from_the_cache_offline(trained_dir, tmp_path):
    repo_id = place_in_hub_cache(trained_dir, tmp_path / "hub", "vitopic-test/tiny-topics")
    code = (
        "from vitopic import TopicClassifier\n"
        "from transformers import pipeline\n"
        f"clf = TopicClassifier.from_pretrained({repo_id!r})\n"
        f"print(sorted(clf.predict({GAZA!r}).scores))\n"
        f"p = pipeline('text-classification', model={repo_id!r}, top_k=None)\n"
        "print(len(p('Israel không_kích Rafah .')[0]))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HOME": str(tmp_path / "home"),
    }
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split("\n")[:2] == [str(sorted(LABELS)), "3"]


# The fixture model is trained briefly, so the quality guard may flag it: these tests are about
# the upload itself and pass force=True (the guard has its own tests in test_quality_guard.py).
def test_push_dry_run_lists_files_and_validates_the_card(trained_dir, capsys):
    names = push_to_hub(trained_dir, "org/vitopic-tiny", private=True, dry_run=True, force=True)
    out = capsys.readouterr().out
    assert {
        "config.json",
        "model.safetensors",
        "vocab.txt",
        "bpe.codes",
        "vitopic.json",
        "README.md",
        "tokenizer_config.json",
    } <= set(names)
    assert not any(n.startswith(("checkpoints", "metrics", "report", "training_args")) for n in names)
    assert "would upload" in out and "(private)" in out and "metadata: valid" in out


def test_push_refuses_an_invalid_card(model_copy):
    card = (model_copy / "README.md").read_text()
    (model_copy / "README.md").write_text(card.replace("pipeline_tag: text-classification\n", ""))
    with pytest.raises(CheckpointError, match="missing pipeline_tag"):
        push_to_hub(model_copy, "org/x", dry_run=True, force=True)


def test_push_uploads_through_huggingface_hub(trained_dir):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw["private"]))

        def upload_folder(self, folder_path, repo_id, **kw):
            files = sorted(os.listdir(folder_path))
            with open(os.path.join(folder_path, "README.md"), encoding="utf-8") as f:
                card = f.read()
            calls.append(("upload", repo_id, files, "org/name2" in card))

    push_to_hub(trained_dir, "org/name2", private=False, api=FakeApi(), force=True)
    assert calls[0] == ("create", "org/name2", False)
    assert calls[1][0] == "upload" and "model.safetensors" in calls[1][2] and calls[1][3]


@pytest.mark.slow
def test_onnx_export_and_backends_agree_with_torch(model_copy):
    run = run_cli("export", "--model", model_copy, "--int8")  # its quiet stderr: the console-script test
    assert run.code == 0, run.err[-2000:]
    assert (model_copy / "model.onnx").is_file() and (model_copy / "model.int8.onnx").is_file()
    texts = [
        json.loads(line)["text"] for line in (ROOT / "corpus" / "test.jsonl").read_text("utf-8").splitlines()
    ]
    assert TopicClassifier.from_pretrained(model_copy).backend == "onnx-int8"  # auto: the faster export
    reference = TopicClassifier.from_pretrained(model_copy, backend="torch").predict(texts)
    for backend, min_agreement in (("onnx", 1.0), ("onnx-int8", 0.99), ("torch-bf16", 0.99)):
        clf = TopicClassifier.from_pretrained(model_copy, backend=backend)
        assert clf.device == torch.device("cpu")
        results = clf.predict(texts)
        agree = sum(a.labels == b.labels for a, b in zip(reference, results, strict=True))
        assert agree / len(texts) >= min_agreement, (backend, agree, len(texts))
    onnx_scores = TopicClassifier.from_pretrained(model_copy, backend="onnx").predict(texts[0])
    assert onnx_scores.scores == pytest.approx(reference[0].scores, abs=1e-4)


def test_onnx_backend_without_export_is_a_clear_error(model_copy):
    with pytest.raises(CheckpointError, match="run `vitopic export"):
        TopicClassifier.from_pretrained(model_copy, backend="onnx-int8")
    with pytest.raises(ValueError, match="unknown backend"):
        TopicClassifier.from_pretrained(model_copy, backend="tensorrt")
