"""Issue 26: files vitopic writes never destroy what is there nor mix two writers; input files are
read in one format per file; errors are one clear line; configs refuse YAML aliases."""

import json
import os
import signal
import stat
import subprocess
import threading
import time

import numpy as np
import pytest
from helpers import DATA, HANG, VITOPIC, run_cli

from vitopic.checkpoint import CheckpointError
from vitopic.cli import build_parser
from vitopic.config import ConfigError, load_config
from vitopic.data import DataError, read_examples
from vitopic.datacheck import check_corpus
from vitopic.files import open_replacing, read_json, write_text
from vitopic.hub import push_to_hub
from vitopic.prediction_io import input_columns, read_records, write_rows
from vitopic.report import update_model_card
from vitopic.run_dir import LOCK_FILE, RunDirError, locked, publish

GAZA = "Israel không kích Rafah ở miền nam Dải Gaza."
NATO = "NATO họp tại Brussels."


# --- files written -------------------------------------------------------------------------


def test_a_device_is_written_as_it_is_never_replaced():
    with open_replacing("/dev/null") as f:
        f.write("x" * 10_000)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_is_streamed_to_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_text(fifo, "rows\n")
    reader.join()
    assert got == ["rows\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_link_planted_at_a_temporary_name_is_never_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in (".pred.jsonl.tmp", ".pred.jsonl.0.tmp"):
        (tmp_path / name).symlink_to(victim)
    write_text(tmp_path / "pred.jsonl", "new\n")
    assert victim.read_text() == "precious" and (tmp_path / "pred.jsonl").read_text() == "new\n"


def test_a_failed_write_keeps_the_old_file_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text('{"old": 1}')

    def rows():
        yield {"labels": [], "scores": {}, "empty": True, "text": "a"}
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError), open_replacing(target) as f:
        write_rows(rows(), "jsonl", [], f)
    assert target.read_text() == '{"old": 1}' and sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.json"
    ]


def test_a_broken_json_file_is_named(tmp_path):
    (tmp_path / "metrics.json").write_text('{"dev": ')
    with pytest.raises(CheckpointError, match=r"metrics\.json: not valid JSON"):
        read_json(tmp_path / "metrics.json", CheckpointError)


def test_an_empty_or_nameless_lock_is_refused_and_a_dead_ones_taken_over(tmp_path):
    for content in ("", "garbage"):  # a run starting (or a broken file): never taken over silently
        (tmp_path / LOCK_FILE).write_text(content)
        with pytest.raises(RunDirError, match="names no process"), locked(tmp_path):
            pass
    (tmp_path / LOCK_FILE).write_text("999999999")  # no such process
    with locked(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())
    assert list(tmp_path.iterdir()) == []


def test_the_model_lands_with_its_report_and_vitopic_json_last(tmp_path, monkeypatch):
    out, staging = tmp_path / "run", tmp_path / "run" / ".staging"
    staging.mkdir(parents=True)
    for name in ("vitopic.json", "model.safetensors", "metrics.json", "README.md", "report.md"):
        (staging / name).write_text(name)
    moved = []
    real = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (moved.append(os.path.basename(b)), real(a, b)))
    publish(out, staging)
    assert moved[-1] == "vitopic.json" and len(moved) == 5 and not staging.exists()


def test_clashing_input_fields_are_all_kept():
    row = input_columns(
        {"scores": 1, "input_scores": 2, "labels": 3, "input_labels": 4, "input_input_labels": 5}
    )
    assert sorted(row.values()) == [1, 2, 3, 4, 5] and not {"scores", "labels"} & set(row)
    assert input_columns({"input_scores": 2, "scores": 1}) == {"input_scores": 2, "input_input_scores": 1}


def test_push_refuses_a_run_without_its_metrics(model_copy):
    (model_copy / "metrics.json").write_text("{oops")
    with pytest.raises(CheckpointError, match=r"metrics\.json: not valid JSON"):
        push_to_hub(model_copy, "org/x", dry_run=True)
    (model_copy / "metrics.json").unlink()
    with pytest.raises(CheckpointError, match=r"no metrics\.json"):
        push_to_hub(model_copy, "org/x", dry_run=True)
    from vitopic.metrics import Metrics

    with pytest.raises(CheckpointError, match=r"no metrics\.json"):
        update_model_card(model_copy, "x.jsonl", Metrics(0, 0, 0, {}))


def test_evaluations_never_replace_the_training_rows_or_plots(model_copy, tmp_path):
    card_dev = next(
        line for line in (model_copy / "README.md").read_text().splitlines() if line.startswith("| dev |")
    )
    plot = (model_copy / "plots" / "pr-dev.png").read_bytes()
    dev_dir = tmp_path / "dev"  # a saved dataset named like the training split
    import datasets

    rows = [json.loads(line) for line in (DATA / "dev.jsonl").read_text("utf-8").splitlines()[:30]]
    datasets.Dataset.from_list(rows).save_to_disk(str(dev_dir))
    assert run_cli("evaluate", "--model", model_copy, "--data", dev_dir, "--update-card").code == 0
    # a second instance: the dev split's own file, evaluated into the model directory
    assert run_cli("evaluate", "--model", model_copy, "--data", DATA / "dev.jsonl").code == 0
    card = (model_copy / "README.md").read_text()
    assert card_dev in card.splitlines() and "| dev (evaluated) |" in card
    assert (model_copy / "plots" / "pr-dev.png").read_bytes() == plot
    metrics = json.loads((model_copy / "metrics.json").read_text())
    assert metrics["evaluations"]["dev"] != metrics["dev"]


def test_concurrent_predict_runs_never_mix_their_outputs(trained_dir, tmp_path):
    texts = tmp_path / "in.txt"
    texts.write_text("".join(f"{GAZA} {i}\n{NATO} {i}\n" for i in range(400)), "utf-8")
    out = tmp_path / "out.jsonl"
    runs = [
        subprocess.Popen(
            [*VITOPIC, "predict", "--model", trained_dir, "--input", texts, "--output", out, "--quiet"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.wait(timeout=HANG) == 0, run.stderr.read()
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [r["text"] for r in rows] == texts.read_text("utf-8").splitlines()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_sigkill_during_export_leaves_the_old_onnx_whole(model_copy):
    old = b"the previous export"
    (model_copy / "model.onnx").write_bytes(old)
    run = subprocess.Popen([*VITOPIC, "export", "--model", model_copy], stderr=subprocess.DEVNULL)
    while run.poll() is None and not list(model_copy.glob(".model.onnx.*.tmp")):
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert (model_copy / "model.onnx").read_bytes() == old


# --- input files -----------------------------------------------------------------------------


def test_plain_text_lines_starting_with_a_brace_are_text(tmp_path, monkeypatch):
    lines = ["{Hà Nội} và NATO họp.", '{"a": 1}', '{"text": "x"}']
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", "utf-8")
    assert [r["text"] for r in read_records(str(tmp_path / "in.txt"))] == lines
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", "utf-8")  # second instance: the option
    assert [r["text"] for r in read_records(str(tmp_path / "in.jsonl"), fmt="text")] == lines
    (tmp_path / "notes").write_text("\n".join(lines) + "\n", "utf-8")  # no suffix: the first line decides
    assert [r["text"] for r in read_records(str(tmp_path / "notes"))] == lines
    with pytest.raises(DataError, match=r"in\.jsonl:1: invalid JSON"):
        list(read_records(str(tmp_path / "in.jsonl")))


def test_csv_headers_and_long_cells(tmp_path):
    (tmp_path / "dup.csv").write_text("text,text\na,b\n")
    with pytest.raises(DataError, match=r"dup.csv:1: the header names column\(s\) \['text'\] more than once"):
        read_records(str(tmp_path / "dup.csv"))
    (tmp_path / "dup-labels.csv").write_text("text,labels,labels\na,gaza,nato\n")  # second instance
    with pytest.raises(DataError, match="more than once"):
        read_examples(tmp_path / "dup-labels.csv", None)
    long = "Gaza " * 40_000  # 200,000 characters, over the csv module's default 131,072
    (tmp_path / "long.csv").write_text(f'text\n"{long}"\nshort\n')
    assert [len(r["text"]) for r in read_records(str(tmp_path / "long.csv"))] == [len(long), 5]


def test_unreadable_saved_datasets_are_one_line(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": [], "labels": []}).save_to_disk(str(tmp_path / "zero"))
    with pytest.raises(DataError, match="zero: no examples"):
        read_examples(tmp_path / "zero", None)
    datasets.Dataset.from_list([{"text": "a", "labels": []}]).save_to_disk(str(tmp_path / "bad"))
    for damage in ("{}", "[]"):  # a second instance: state.json of another shape
        (tmp_path / "bad" / "state.json").write_text(damage)
        with pytest.raises(DataError, match="not a readable dataset saved with save_to_disk"):
            read_examples(tmp_path / "bad", None)


def test_config_paths_that_are_not_files(tmp_path):
    with pytest.raises(ConfigError, match="is a directory; --config takes a YAML file"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


# --- clear errors --------------------------------------------------------------------------


def test_terminal_output_escapes_control_characters(tmp_path, capsys):
    row = {"text": "\x1b[2J\x07NATO\u202e\x9b", "labels": ["nato"], "scores": {"nato": 0.9}, "empty": False}
    from io import StringIO

    out = StringIO()
    write_rows([row], "table", ["nato"], out)
    text = out.getvalue()
    assert "\\x1b[2J\\x07NATO\\u202e\\x9b" in text
    assert not any((ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in text)


def test_predict_says_decode_bytes_and_takes_numpy_numbers(classifier):
    for value in (b"NATO", [b"NATO"], bytearray(b"NATO")):
        with pytest.raises(TypeError, match="bytes: decode first"):
            classifier.predict(value)
    assert classifier.predict(NATO, threshold=np.float32(0.5), batch_size=np.int64(4)).scores
    with pytest.raises(ValueError, match="threshold must be a number"):
        classifier.predict(NATO, threshold=np.bool_(True))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["predict", "--model", "m", "--batch-size", "²", "x"],
            "--batch-size: must be an integer >= 1, got '²'",
        ),
        (["predict", "--model", "m", "--top-k", "١", "x"], "--top-k: must be an integer >= 1, got '١'"),
        (
            ["evaluate", "--model", "m", "--data", "d", "--errors", "-1"],
            "--errors: must be an integer >= 0, got '-1'",
        ),
        (["predict", "--model", "m", "--threshold", "٠.٥", "x"], "--threshold: must be a number in [0, 1]"),
    ],
)
def test_numeric_options_take_ascii_numbers_in_range(argv, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert message in err and "_int" not in err and err.count("\n") == 1


def test_data_check_needs_a_directory(tmp_path):
    for path in (DATA / "showcase.jsonl", tmp_path / "absent"):
        with pytest.raises(DataError, match="data check takes a corpus directory"):
            check_corpus(path, ["gaza"])
    code, _, err = run_cli("data", "check", str(DATA / "showcase.jsonl"))
    assert code == 2 and "showcase.jsonl: is not a directory" in err and err.count("\n") == 1


def test_the_ray_labeler_names_the_row(classifier):
    from vitopic.integrations.ray import Labeler

    labeler = object.__new__(Labeler)
    labeler.classifier, labeler.text_column, labeler.options = classifier, "text", {}
    batch = {"id": np.array(["a", "b"], dtype=object), "text": np.array([NATO, None], dtype=object)}
    with pytest.raises(TypeError) as err:
        labeler(batch)
    assert str(err.value).startswith("row 1 of this batch (id 'b'): 'text' is None, not a string")


# --- YAML --------------------------------------------------------------------------------------


def test_yaml_aliases_are_refused_and_echoed_values_clipped(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdef", "bcdefg", strict=True)
    )
    (tmp_path / "bomb.yaml").write_text(bomb + "training:\n  batch_size: *g\n")
    with pytest.raises(ConfigError, match=r"anchors and aliases .* are not allowed") as err:
        load_config(tmp_path / "bomb.yaml")
    assert len(str(err.value)) < 300
    with pytest.raises(ConfigError, match="not allowed"):  # second instance: on the command line
        load_config(None, ["training.batch_size=&x 3"])
    for value in ("'" + "x" * 100_000 + "'", "9" * 100_000):
        with pytest.raises(ConfigError) as err:
            load_config(None, [f"training.batch_size={value}"])
        assert len(str(err.value)) < 300
