"""`vitopic predict` as users run it: every line in gives one row out, fields kept, formats chosen."""

import csv
import json
import subprocess

import pytest
from helpers import ROOT, VITOPIC, VITOPIC_SCRIPT, run_cli

from vitopic import __version__
from vitopic.cli import main

GAZA = "Israel tiếp tục không kích Rafah ở Dải Gaza."
NATO = "Tổng thư ký NATO kêu gọi các đồng minh tăng chi tiêu quốc phòng."


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.split("\n") if line]


def test_every_line_gives_one_row_in_order_with_its_fields(trained_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"id": 7, "text": GAZA, "source": "vnexpress", "labels": ["gaza"]}),
        "",
        json.dumps({"text": "<br/><div></div>"}),
        json.dumps({"text": NATO}),
        json.dumps({"id": "b", "text": "  "}),
        json.dumps({"text": "Trời mưa."}),
    ]
    src.write_text("\n".join(lines) + "\n", "utf-8")
    code, out, err = run_cli("predict", "--model", str(trained_dir), "--input", str(src))
    assert code == 0, err
    rows = jsonl(out)
    assert len(rows) == 6
    assert rows[0]["id"] == 7 and rows[0]["source"] == "vnexpress"
    assert rows[0]["input_labels"] == ["gaza"] and "gaza" in rows[0]["labels"]
    assert [r["empty"] for r in rows] == [False, True, True, False, True, False]
    assert rows[1]["text"] == "" and rows[4]["id"] == "b" and rows[4]["labels"] == []
    assert rows[3]["text"] == NATO and "nato" in rows[3]["labels"]


def test_csv_input_uses_its_header_and_text_field(trained_dir, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,body\n1,"' + GAZA + '"\n2,=HYPERLINK("http://x")\n', "utf-8")
    code, _, err = run_cli("predict", "--model", str(trained_dir), "--input", str(src))
    assert code == 2 and "no 'text' column" in err and "in.csv:1" in err
    out = tmp_path / "out.csv"
    code, _, err = run_cli(
        "predict",
        "--model",
        str(trained_dir),
        "--input",
        str(src),
        "--text-field",
        "body",
        "--output",
        str(out),
    )
    assert code == 0, err
    table = list(csv.reader(out.open(encoding="utf-8")))
    assert table[0] == ["id", "body", "labels", "ukraine_aid", "gaza", "nato", "empty"]
    assert len(table) == 3 and table[1][0] == "1" and "gaza" in table[1][2].split(";")
    assert table[2][1] == '\'=HYPERLINK("http://x")'  # neutralised: a spreadsheet shows text


def test_formats_on_stdout_and_options(trained_dir):
    model = ("predict", "--model", str(trained_dir))
    code, out, _ = run_cli(*model, "--format", "csv", GAZA)
    assert code == 0 and out.splitlines()[0] == "text,labels,ukraine_aid,gaza,nato,empty"
    code, out, _ = run_cli(*model, "--format", "table", GAZA, "")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and "gaza" in lines[1] and "(empty)" in lines[2]
    code, out, _ = run_cli(*model, "--top-k", "1", "--threshold", "0", GAZA)  # every label passes
    assert jsonl(out)[0]["labels"] == ["gaza"] == list(jsonl(out)[0]["scores"])  # only the top one
    code, out, _ = run_cli(*model, "--pieces", f"NATO họp tại Brussels. {GAZA}")
    assert [p["text"] for p in jsonl(out)[0]["pieces"]] == ["NATO họp tại Brussels.", GAZA]
    code, out, _ = run_cli(*model, "--threshold", "1.0", GAZA)
    assert jsonl(out)[0]["labels"] == []
    code, out, _ = run_cli(*model, "--backend", "torch-bf16", "--batch-size", "1", GAZA)
    assert code == 0 and "gaza" in jsonl(out)[0]["labels"]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["--output", "{tmp}/x.txt", GAZA], None, "cannot tell the format from '.txt'"),
        (["--output", "{tmp}", GAZA], None, "is a directory"),
        (["--output", "{tmp}/no/such/x.jsonl", GAZA], None, "does not exist"),
        (["--input", "{tmp}/in.txt", GAZA], None, "not both"),
        ([], "", "<stdin>: no input"),
        (["--input", "{tmp}/latin1.txt"], None, "not UTF-8 text (byte 0xe0"),
        (["--input", "{tmp}"], None, "is a directory, expected a file"),
        (["--device", "banana", GAZA], None, "'banana' is not a torch device"),
        (["--device", "cuda:7", GAZA], None, "not available"),
        (["--batch-size", "0", GAZA], None, "--batch-size: must be an integer >= 1, got '0'"),
        (["--threshold", "0.5x", GAZA], None, "--threshold: must be a number in [0, 1]"),
        (["--backend", "tensorrt", GAZA], None, "--backend: invalid choice: 'tensorrt'"),
        (["--input", "{tmp}/surrogate.jsonl"], None, "surrogate.jsonl:2: 'text' holds a lone surrogate"),
        (["--input", "{tmp}/digits.jsonl"], None, "digits.jsonl:1: unreadable JSON (Exceeds the limit"),
    ],
)
def test_bad_invocations_are_one_line_errors_and_write_nothing(trained_dir, tmp_path, argv, stdin, message):
    (tmp_path / "in.txt").write_text(GAZA + "\n", "utf-8")
    (tmp_path / "latin1.txt").write_bytes("voilà\n".encode("latin-1"))
    (tmp_path / "surrogate.jsonl").write_text('{"text": "ok"}\n{"text": "Gaza \\ud800"}\n', "utf-8")
    (tmp_path / "digits.jsonl").write_text('{"id": ' + "9" * 5001 + ', "text": "a"}\n', "utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run_cli("predict", "--model", str(trained_dir), *argv, stdin=stdin or "")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_line_breaks_are_only_newlines_and_output_reads_back(trained_dir, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(f"{GAZA}\fthêm\u2028nữa\r\n{NATO}\u2029\n", "utf-8")
    first = tmp_path / "first.jsonl"
    code, _, err = run_cli(
        "predict", "--model", str(trained_dir), "--input", str(src), "--output", str(first), "--quiet"
    )
    assert code == 0 and err == ""
    rows = jsonl(first.read_text("utf-8"))
    assert len(rows) == 2 and "\u2028" in rows[0]["text"]
    again = tmp_path / "again.jsonl"
    assert (
        main(
            ["predict", "--model", str(trained_dir), "--input", str(first), "--output", str(again), "--quiet"]
        )
        == 0
    )
    assert [r["text"] for r in jsonl(again.read_text("utf-8"))] == [r["text"] for r in rows]


@pytest.mark.slow
def test_the_console_script_as_users_run_it(model_copy):
    """The one run of the installed `vitopic` script (the other CLI tests call cli.main): stdin in,
    rows out, and nothing on stderr (no "Loading weights" bar, no third-party or exporter chatter)."""
    done = subprocess.run(
        [VITOPIC_SCRIPT, "predict", "--model", str(model_copy)],
        input=f"{GAZA}\n\nx\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    rows = jsonl(done.stdout)
    assert len(rows) == 3 and "gaza" in rows[0]["labels"] and rows[1]["empty"]
    assert done.stderr == ""
    done = subprocess.run([VITOPIC_SCRIPT, "--version"], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == f"vitopic {__version__}"
    done = subprocess.run(
        [VITOPIC_SCRIPT, "export", "--model", str(model_copy), "--int8"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]


def test_input_streams_in_chunks_and_a_late_bad_line_leaves_no_output(trained_dir, tmp_path, monkeypatch):
    """Chunks of 4 records: order, ids and every field survive the boundaries; a bad line in a
    later chunk (after rows were written) names its line and leaves no output file."""
    import vitopic.cli

    monkeypatch.setattr(vitopic.cli, "PREDICT_CHUNK", 4)
    texts = [GAZA, NATO, "", "Trời mưa.", GAZA, "<b></b>", NATO, "x", GAZA, NATO, "y"]
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "text": t, "n": i * i}) + "\n" for i, t in enumerate(texts)), "utf-8"
    )
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli("predict", "--model", str(trained_dir), "--input", str(src), "--output", str(out))
    assert code == 0 and f"wrote {len(texts)} predictions" in err
    rows = jsonl(out.read_text("utf-8"))
    assert [(r["id"], r["text"], r["n"]) for r in rows] == [(i, t, i * i) for i, t in enumerate(texts)]
    whole = [r["labels"] for r in jsonl(run_cli("predict", "--model", str(trained_dir), *texts)[1])]
    assert [r["labels"] for r in rows] == whole  # chunking changes no answer

    bad = tmp_path / "bad.jsonl"
    bad.write_text(src.read_text("utf-8") + '{"id": 11, "text": 3}\n', "utf-8")
    target = tmp_path / "bad-out.jsonl"
    code, _, err = run_cli(
        "predict", "--model", str(trained_dir), "--input", str(bad), "--output", str(target)
    )
    assert code == 2 and "bad.jsonl:12: a JSON line needs a string 'text' field" in err
    assert not target.exists() and not list(tmp_path.glob(".*tmp"))


def test_csv_output_refuses_a_record_with_new_fields(trained_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": GAZA}) + "\n" + json.dumps({"text": NATO, "id": 2}) + "\n", "utf-8")
    target = tmp_path / "out.csv"
    code, _, err = run_cli(
        "predict", "--model", str(trained_dir), "--input", str(src), "--output", str(target)
    )
    assert code == 2 and "record 2 has field(s) ['id'] that the first record lacks" in err
    assert not target.exists()


@pytest.mark.slow
def test_sigterm_mid_run_leaves_neither_output_nor_temp_file(trained_dir, tmp_path):
    import signal
    import time

    src = tmp_path / "big.txt"
    src.write_text(f"{GAZA}\n{NATO}\n" * 20000, "utf-8")
    target = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [
            *VITOPIC,
            "predict",
            "--model",
            str(trained_dir),
            "--input",
            str(src),
            "--output",
            str(target),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120

    def partial_written() -> bool:  # the unique temp name (vitopic.files) holds some rows
        return any(p.stat().st_size for p in tmp_path.glob(f".{target.name}.*.tmp"))

    while not partial_written() and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt"]
