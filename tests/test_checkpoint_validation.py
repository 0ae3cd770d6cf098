"""Tampered or broken checkpoints are refused with a one-line CheckpointError naming the file,
before a model is built from them; nothing outside the checkpoint directory is ever read."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import edit_json, edit_weights
from hub_replica import place_snapshot
from safetensors.torch import load_file, save_file

from vitopic import TopicClassifier
from vitopic.checkpoint import CheckpointError, load_model, open_checkpoint
from vitopic.hub import resolve

GAZA = "Israel không kích Rafah ở miền nam Dải Gaza."
SENTINEL = "SENTINEL-OUTSIDE-THE-CHECKPOINT"
HEAD = "classifier.out_proj.weight"
EMBEDDINGS = "roberta.embeddings.word_embeddings.weight"


def refused(directory: Path, file: str, fragment: str) -> str:
    """Loading `directory` fails with one line that starts with `directory/file` and says `fragment`."""
    with pytest.raises(CheckpointError) as info:
        TopicClassifier.from_pretrained(directory)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{directory / file}:"), message
    assert fragment in message, message
    return message


def sharded(model_copy: Path, target: Path) -> Path:
    """The checkpoint with its weights saved in ~50 KB shards and a model.safetensors.index.json."""
    shutil.copytree(model_copy, target, ignore=shutil.ignore_patterns("model.safetensors"))
    load_model(model_copy).save_pretrained(target, max_shard_size="50KB")
    assert not (target / "model.safetensors").exists()
    return target


def test_a_valid_checkpoint_passes_the_checks_and_loads(model_copy):
    open_checkpoint(model_copy)
    TopicClassifier.from_pretrained(model_copy).predict(GAZA)


@pytest.mark.parametrize(
    "tensor", [HEAD, "classifier.dense.bias", EMBEDDINGS, "roberta.encoder.layer.1.output.dense.weight"]
)
def test_a_missing_tensor_is_refused_not_initialised_at_random(model_copy, tensor):
    edit_weights(model_copy, lambda t: t.pop(tensor))
    refused(model_copy, "model.safetensors", f"tensor {tensor} missing")


def test_a_head_for_another_number_of_labels_is_refused(model_copy):
    def four_labels(t):
        t[HEAD] = torch.cat([t[HEAD], t[HEAD][:1]])
        t["classifier.out_proj.bias"] = torch.cat([t["classifier.out_proj.bias"], torch.zeros(1)])

    edit_weights(model_copy, four_labels)
    hidden = load_file(model_copy / "model.safetensors")[HEAD].shape[1]
    refused(
        model_copy,
        "model.safetensors",
        f"tensor {HEAD} has shape [4, {hidden}], config.json needs [3, {hidden}]",
    )
    edit_json(model_copy / "config.json", num_labels=4)  # the head and config.json agree, id2label not
    refused(model_copy, "config.json", "num_labels 4 disagrees with the 3 classes of id2label")


def test_embeddings_of_another_size_than_the_vocabulary_are_refused(model_copy):
    vocab_size = json.loads((model_copy / "config.json").read_text())["vocab_size"]
    edit_weights(model_copy, lambda t: t.update({EMBEDDINGS: t[EMBEDDINGS][:-8].clone()}))
    refused(model_copy, "model.safetensors", f"tensor {EMBEDDINGS} has shape [{vocab_size - 8},")
    edit_json(model_copy / "config.json", vocab_size=vocab_size - 8)  # config.json follows the weights
    refused(
        model_copy,
        "vocab.txt",
        f"{vocab_size} tokens (with <s>, <pad>, </s>, <unk> and <mask>), "
        f"but config.json vocab_size (the embeddings' rows) is {vocab_size - 8}",
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON (Expecting property name"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('{"model_type": "bert"}', "model_type 'bert' is not 'roberta'"),
        ('{"model_type": "gpt2"}', "model_type 'gpt2' is not 'roberta'"),
        ('{"model_type": "x<y>z"}', "model_type 'x<y>z' is not 'roberta'"),
        ('{"model_type": null}', "model_type None is not 'roberta'"),
        ('{"hidden_size": 65}', "not a buildable RoBERTa config (ValueError: The hidden size (65)"),
        ('{"hidden_act": "nope"}', "not a buildable RoBERTa config (KeyError"),
        ('{"transformers_weights": "other.safetensors"}', "transformers_weights 'other.safetensors' refused"),
    ],
)
def test_a_broken_or_foreign_config_json_is_refused(model_copy, content, fragment):
    path = model_copy / "config.json"
    if content.startswith('{"'):  # a change to the real config
        edit_json(path, **json.loads(content))
    else:
        path.write_text(content, "utf-8")
    refused(model_copy, "config.json", fragment)


def test_a_missing_config_json_is_refused(model_copy):
    (model_copy / "config.json").unlink()
    refused(model_copy, "config.json", "not found")


@pytest.mark.parametrize("tensor", [HEAD, EMBEDDINGS, "roberta.encoder.layer.0.attention.self.query.bias"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused(model_copy, tensor, value):
    def spoil(t):
        t[tensor].view(-1)[3] = value

    edit_weights(model_copy, spoil)
    refused(model_copy, "model.safetensors", f"tensor {tensor} holds NaN or infinite values")


@pytest.mark.parametrize(
    ("file", "content", "fragment"),
    [
        ("vocab.txt", None, "not found; PhoBERT's tokenizer needs vocab.txt and bpe.codes"),
        ("vocab.txt", "", "empty"),
        ("bpe.codes", None, "not found; PhoBERT's tokenizer needs vocab.txt and bpe.codes"),
        ("bpe.codes", "\n", "empty; PhoBERT's tokenizer needs its BPE merges"),
        ("bpe.codes", b"\xff\xfe\x00garbage", "unreadable ('utf-8' codec can't decode"),
    ],
)
def test_missing_or_empty_tokenizer_files_are_refused(model_copy, file, content, fragment):
    path = model_copy / file
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    refused(model_copy, file, fragment)


def test_a_vocabulary_that_does_not_fit_the_embeddings_is_refused(model_copy):
    path = model_copy / "vocab.txt"
    lines = path.read_text("utf-8").splitlines(keepends=True)
    vocab_size = len(lines) + 5
    path.write_text("".join(lines[:-1]), "utf-8")
    refused(
        model_copy,
        "vocab.txt",
        f"{vocab_size - 1} tokens (with <s>, <pad>, </s>, <unk> and <mask>), "
        f"but config.json vocab_size (the embeddings' rows) is {vocab_size}",
    )
    path.write_text("".join([*lines[:5], lines[2], *lines[5:]]), "utf-8")
    refused(model_copy, "vocab.txt", f"vocab.txt:6: token {lines[2].split()[0]!r} already on line 3")
    path.write_text("".join([*lines[:5], "\n", *lines[5:]]), "utf-8")
    refused(model_copy, "vocab.txt", "vocab.txt:6: expected '<token> <count>', got ''")


@pytest.mark.parametrize("tokenizer_class", ["BertTokenizer", "GPT2Tokenizer", "PhobertTokenizerFast"])
def test_a_tokenizer_config_naming_another_tokenizer_is_refused(model_copy, tokenizer_class):
    edit_json(model_copy / "tokenizer_config.json", tokenizer_class=tokenizer_class)
    refused(
        model_copy,
        "tokenizer_config.json",
        f"tokenizer_class {tokenizer_class!r}; vitopic checkpoints use PhobertTokenizer",
    )


def test_without_tokenizer_class_config_json_decides_as_in_auto_tokenizer(model_copy):
    config = json.loads((model_copy / "tokenizer_config.json").read_text())
    del config["tokenizer_class"]
    (model_copy / "tokenizer_config.json").write_text(json.dumps(config))
    TopicClassifier.from_pretrained(model_copy)  # config.json names PhobertTokenizer
    edit_json(model_copy / "config.json", tokenizer_class=None)
    refused(model_copy, "config.json", "tokenizer_class None; vitopic checkpoints use PhobertTokenizer")


@pytest.mark.parametrize("file", ["tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"])
def test_invalid_json_in_a_tokenizer_file_is_refused(model_copy, file):
    (model_copy / file).write_text('{"tokenizer_class": "PhobertTokenizer",', "utf-8")
    refused(model_copy, file, "not valid JSON")


NAMES = "labels must be non-empty names without surrounding spaces"


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"thresholds": [0.5, float("nan"), 0.5]}, "thresholds[1] must be a number in [0, 1], got nan"),
        ({"thresholds": [0.5, 0.5, float("inf")]}, "thresholds[2] must be a number in [0, 1], got inf"),
        ({"thresholds": ["0.5", 0.5, 0.5]}, "thresholds[0] must be a number in [0, 1], got '0.5'"),
        ({"thresholds": [0.5, True, 0.5]}, "thresholds[1] must be a number in [0, 1], got True"),
        ({"thresholds": [0.5, 1.5, 0.5]}, "thresholds[1] must be a number in [0, 1], got 1.5"),
        ({"thresholds": [-0.1, 0.5, 0.5]}, "thresholds[0] must be a number in [0, 1], got -0.1"),
        ({"thresholds": 0.5}, "thresholds must be a list, got 0.5"),
        ({"thresholds": [0.5, 0.5]}, "2 thresholds for 3 labels"),
        ({"labels": ["gaza", "gaza", "nato"]}, "labels must be unique, got ['gaza', 'gaza', 'nato']"),
        ({"labels": []}, "labels must name at least one label, got []"),
        ({"labels": ["ukraine_aid", 2, "nato"]}, NAMES),
        ({"labels": ["ukraine_aid", " ", "nato"]}, NAMES),
        ({"labels": [" gaza", "nato"]}, NAMES),  # as a config refuses it
        ({"labels": "gaza"}, "labels must name at least one label, got 'gaza'"),
        ({"mode": "multi"}, "mode must be one of ['multi_label', 'single_label'], got 'multi'"),
        (
            {"segmenter": "jieba"},
            "segmenter must be one of ['rdrsegmenter', 'underthesea', 'pyvi', 'none'], got 'jieba'",
        ),
        (
            {"max_length": 2},
            "max_length must be an integer in 8..256, got 2 (PhoBERT reads at most 256 "
            "tokens; below 8, <s> and </s> leave a piece almost no room for text)",
        ),
        ({"max_length": 0}, "max_length must be an integer in 8..256, got 0"),
        ({"max_length": 512}, "max_length must be an integer in 8..256, got 512"),
        ({"max_length": "256"}, "max_length must be an integer in 8..256, got '256'"),
        ({"max_length": 128.0}, "max_length must be an integer in 8..256, got 128.0"),
        ({"max_length": True}, "max_length must be an integer in 8..256, got True"),
        ({"thresholds_": []}, "unreadable vitopic metadata"),
    ],
)
def test_bad_vitopic_json_values_are_refused(model_copy, changes, fragment):
    edit_json(model_copy / "vitopic.json", **changes)
    refused(model_copy, "vitopic.json", fragment)


def test_invalid_vitopic_json_and_a_mode_disagreeing_with_problem_type_are_refused(model_copy):
    edit_json(model_copy / "config.json", problem_type="single_label_classification")
    refused(
        model_copy,
        "vitopic.json",
        "mode 'multi_label' disagrees with config.json problem_type 'single_label_classification'",
    )
    (model_copy / "vitopic.json").write_text('{"labels": NaN', "utf-8")
    refused(model_copy, "vitopic.json", "not valid JSON")


def test_a_sharded_checkpoint_loads_and_predicts_as_the_unsharded_one(model_copy, tmp_path):
    shards = sharded(model_copy, tmp_path / "sharded")
    assert len(list(shards.glob("model-*.safetensors"))) > 3
    texts = [GAZA, "NATO tập trận ở Ba Lan .", "Viện trợ quân sự cho Ukraine"]
    expected = [p.scores for p in TopicClassifier.from_pretrained(model_copy).predict(texts)]
    assert [p.scores for p in TopicClassifier.from_pretrained(shards).predict(texts)] == expected


@pytest.mark.parametrize(
    "shard",
    [
        "weights.bin",
        "../../../../etc/passwd",
        "/etc/passwd",
        "../outside/model-00001-of-00001.safetensors",
        "model.safetensors/..",
        ["model-00001.safetensors"],
    ],
)
def test_an_index_naming_files_outside_the_checkpoint_is_refused(model_copy, tmp_path, shard):
    shards = sharded(model_copy, tmp_path / "sharded")
    # A real safetensors file just outside, holding the weights with a sentinel: never to be read.
    (tmp_path / "outside").mkdir()
    save_file(
        {**load_file(model_copy / "model.safetensors"), SENTINEL: torch.zeros(1)},
        tmp_path / "outside" / "model-00001-of-00001.safetensors",
        metadata={"format": "pt"},
    )
    index = shards / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    data["weight_map"] = dict.fromkeys(data["weight_map"], shard)
    index.write_text(json.dumps(data))
    message = refused(
        shards,
        "model.safetensors.index.json",
        "; only model*.safetensors files in the checkpoint directory are loaded",
    )
    assert f"weight_map names {shard!r}" in message and SENTINEL not in message


def test_an_index_missing_a_shard_or_a_tensor_is_refused(model_copy, tmp_path):
    shards = sharded(model_copy, tmp_path / "sharded")
    index = shards / "model.safetensors.index.json"
    weight_map = json.loads(index.read_text())["weight_map"]
    holder = shards / weight_map[HEAD]
    tensors = load_file(holder)
    del tensors[HEAD]
    save_file(tensors, holder, metadata={"format": "pt"})
    refused(shards, "model.safetensors.index.json", f"tensor {HEAD} missing")
    holder.unlink()
    refused(shards, "model.safetensors.index.json", f"shard {holder.name} not found")
    index.write_text('{"weight_map": {}}')
    refused(shards, "model.safetensors.index.json", "needs a non-empty weight_map and a metadata object")


@pytest.mark.parametrize(
    "file",
    [
        "config.json",
        "vocab.txt",
        "bpe.codes",
        "tokenizer_config.json",
        "vitopic.json",
        "model.safetensors",
        "model.onnx",
        "added_tokens.json",
    ],
)
def test_a_link_out_of_the_checkpoint_is_refused_unread(model_copy, tmp_path, file):
    outside = tmp_path / "elsewhere" / file
    outside.parent.mkdir()
    original = model_copy / file
    if file.endswith(".json"):  # valid content, so that only the refusal can stop the load
        outside.write_text(json.dumps({**json.loads(original.read_text()), SENTINEL: 1}), "utf-8")
    else:
        outside.write_bytes(original.read_bytes() if original.exists() else SENTINEL.encode())
    original.unlink(missing_ok=True)
    original.symlink_to(os.path.relpath(outside, model_copy))
    message = refused(model_copy, file, f"a link to {outside}, outside the checkpoint; refused")
    assert SENTINEL not in message


def test_links_inside_the_checkpoint_and_into_a_hub_cache_repo_are_fine(model_copy, tmp_path):
    (model_copy / "vocab.txt").rename(model_copy / "vocab.original")
    (model_copy / "vocab.txt").symlink_to("vocab.original")
    TopicClassifier.from_pretrained(model_copy)

    files = {p.name: p.read_bytes() for p in model_copy.iterdir() if p.is_file()}
    commit = place_snapshot(tmp_path / "hub", "org/tiny", files)
    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / commit
    assert (snapshot / "config.json").is_symlink()
    TopicClassifier.from_pretrained(snapshot)

    other = place_snapshot(tmp_path / "hub", "org/other", {"config.json": files["config.json"]})
    (snapshot / "config.json").unlink()  # now a link into another repo's cache folder
    (snapshot / "config.json").symlink_to(
        tmp_path / "hub" / "models--org--other" / "snapshots" / other / "config.json"
    )
    refused(snapshot, "config.json", "outside the checkpoint; refused")


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda data: data[: len(data) // 2], "incomplete metadata, file not fully covered"),
        (lambda data: data[:-1], "incomplete metadata, file not fully covered"),
        (lambda data: bytes(range(256)) * 16, "header too large"),
        (lambda data: b"", "header too small"),
    ],
)
def test_a_corrupted_safetensors_file_is_refused(model_copy, damage, fragment):
    path = model_copy / "model.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    refused(
        model_copy,
        "model.safetensors",
        f"not a valid safetensors file (Error while deserializing header: {fragment})",
    )


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """Run from an empty directory; any attempt to reach the Hub fails the test."""
    monkeypatch.chdir(tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("the Hub was contacted")

    monkeypatch.setattr("vitopic.hub.snapshot_download", fail)


@pytest.mark.parametrize(
    "name",
    ["../x", "a/../b", "./x/y", "/no/such/model", "~/no-such-model-here", "runs/tiny/model", "./model"],
)
def test_a_path_that_does_not_exist_is_no_such_directory(no_hub, name):
    with pytest.raises(CheckpointError, match="no such directory") as info:
        resolve(name)
    assert str(info.value).startswith(f"{name}: ")


@pytest.mark.parametrize(
    "name", ["org name/model", "org/-model", "org/model.git", "model", "org/mo\x00del", "org/mo del"]
)
def test_an_invalid_hub_id_is_refused_without_contacting_the_hub(no_hub, name):
    with pytest.raises(CheckpointError) as info:
        resolve(name)
    assert str(info.value) == f"{name}: not a local directory and not a valid Hub id (org/name)"


def test_a_file_is_not_a_checkpoint_directory(no_hub, model_copy):
    with pytest.raises(CheckpointError, match="not a directory"):
        resolve(model_copy / "config.json")


ADDED = {"content": "Ukraine", "special": False, "lstrip": False, "rstrip": False, "normalized": True}


@pytest.mark.parametrize(
    ("file", "edit", "fragment"),
    [
        (
            "tokenizer_config.json",
            lambda d: _add_to_decoder(d, "70000", ADDED),
            "token 'Ukraine' has id '70000', not a row of the embeddings",
        ),
        ("tokenizer_config.json", lambda d: _add_to_decoder(d, "-1", ADDED), "has id '-1'"),
        ("added_tokens.json", lambda d: edit_json(d / "added_tokens.json", Ukraine=64001), "has id 64001"),
        (
            "special_tokens_map.json",
            lambda d: (d / "special_tokens_map.json").write_text(
                json.dumps({"additional_special_tokens": ["<x>"]})
            ),
            "special token '<x>' is neither in vocab.txt nor an added token",
        ),
        (
            "tokenizer_config.json",
            lambda d: edit_json(d / "tokenizer_config.json", sep_token="<sep>"),
            "special token '<sep>'",
        ),
    ],
)
def test_token_ids_past_the_embeddings_are_refused(model_copy, file, edit, fragment):
    """An id the embeddings have no row for would be a raw IndexError at the first text using it."""
    edit(model_copy)
    refused(model_copy, file, fragment)


def _add_to_decoder(directory: Path, token_id: str, entry: dict) -> None:
    config = json.loads((directory / "tokenizer_config.json").read_text("utf-8"))
    config["added_tokens_decoder"][token_id] = entry
    edit_json(directory / "tokenizer_config.json", added_tokens_decoder=config["added_tokens_decoder"])


@pytest.mark.parametrize(
    ("backend", "file", "content", "fragment"),
    [
        ("onnx", "model.onnx", b"garbage", "not a valid ONNX model (["),
        ("onnx-int8", "model.int8.onnx", b"", "not a valid ONNX model"),
    ],
)
def test_a_broken_onnx_file_is_refused_naming_it(model_copy, backend, file, content, fragment):
    (model_copy / file).write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        TopicClassifier.from_pretrained(model_copy, backend=backend)
    message = str(info.value)
    assert message.startswith(f"{model_copy / file}: ") and fragment in message and "\n" not in message
    assert "vitopic export --model" in message


def test_an_onnx_graph_of_another_shape_is_refused(model_copy):
    """A valid ONNX file that is not vitopic's export (other inputs) fails at loading, not at predict."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_copy / "model.onnx"
    )
    with pytest.raises(CheckpointError, match=r"model\.onnx: takes \['x'\] and gives \['y'\]"):
        TopicClassifier.from_pretrained(model_copy, backend="onnx")
