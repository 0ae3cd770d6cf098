"""Property-based tests (hypothesis): predict and the data loader on generated input."""

import json
import re

from helpers import LABELS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitopic.data import DataError, read_jsonl

WORDS = st.sampled_from(
    [
        "Kiev",
        "Gaza",
        "NATO",
        "viện",
        "trợ",
        "Hòa",
        "bình",
        ",",
        ".",
        "😀",
        "<b>",
        "</b>",
        "&amp;",
        "Hà_Nội",
        "\u0301",
        "1.5",
        "\n",
        "   ",
    ]
)
TEXTS = st.one_of(st.text(max_size=60), st.lists(WORDS, max_size=40).map(" ".join))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEXTS, max_size=12), st.integers(min_value=1, max_value=8))
def test_predict_answers_every_list_of_str(classifier, texts, batch_size):
    results = classifier.predict(texts, batch_size=batch_size)
    assert len(results) == len(texts)
    for r in results:
        assert set(r.scores) == set(LABELS)
        assert all(0.0 <= s <= 1.0 for s in r.scores.values())
        assert set(r.labels) <= set(LABELS)
        assert not r.empty or (r.labels == [] and set(r.scores.values()) == {0.0})


_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=20),
    st.lists(st.sampled_from([*LABELS, "sport", 3]), max_size=3),
)
_ROW = st.fixed_dictionaries({}, optional={"id": _VALUE, "text": _VALUE, "labels": _VALUE})
_LINE = st.one_of(_ROW.map(lambda r: json.dumps(r, ensure_ascii=False)), st.text(max_size=30))


@settings(max_examples=200, deadline=None)
@given(st.lists(_LINE, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_loader_accepts_or_names_file_and_line(tmp_path_factory, lines, newline, bom):
    path = tmp_path_factory.mktemp("gen") / "gen.jsonl"
    payload = newline.join(lines).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + payload)
    try:
        rows = read_jsonl(path, LABELS)
    except DataError as err:
        assert re.match(rf"{re.escape(str(path))}(:\d+)?: \S", str(err)), str(err)
        return
    assert rows and all(isinstance(r.text, str) and r.text.strip() for r in rows)
    assert all(set(r.labels) <= set(LABELS) for r in rows)
