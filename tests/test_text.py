import json
import unicodedata

import pytest
from helpers import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from vitopic import text
from vitopic.options import SEGMENTERS
from vitopic.text import SegmenterUnavailableError, is_segmented, normalize, prepare, split_sentences
from vitopic.tokenizer import phobert_tokenizer

SHOWCASE = [json.loads(line)["text"] for line in (DATA / "showcase.jsonl").read_text("utf-8").splitlines()]
BACKENDS = [
    "pyvi",
    "underthesea",
    pytest.param("rdrsegmenter", marks=pytest.mark.skipif(not text.java_available(), reason="needs Java")),
]


def word_f1(predicted: str, gold: str) -> float:
    def spans(s: str) -> set[tuple[int, int]]:
        out, pos = set(), 0
        for word in s.split():
            n = len(word.split("_"))
            out.add((pos, pos + n))
            pos += n
        return out

    p, g = spans(predicted), spans(gold)
    return 2 * len(p & g) / (len(p) + len(g))


def test_every_segmenter_the_schema_offers_has_a_backend():
    assert set(text._BACKENDS) == set(SEGMENTERS) == {*BACKENDS[:2], "rdrsegmenter", "none"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_resegment_the_showcase_sentences(backend):
    raw = [s.replace("_", " ") for s in SHOWCASE]
    gold = prepare(SHOWCASE, "none")
    segmented = prepare(raw, backend)
    scores = [word_f1(p, g) for p, g in zip(segmented, gold, strict=True)]
    assert min(scores) > 0.75, list(zip(scores, segmented, strict=True))
    assert sum(scores) / len(scores) > 0.9


def test_pre_segmented_text_passes_through():
    assert all(is_segmented(s) for s in SHOWCASE)
    assert prepare(SHOWCASE, "pyvi") == prepare(SHOWCASE, "none")
    assert prepare(["Tổng_thư_ký NATO Mark_Rutte ."], "pyvi") == ["Tổng_thư_ký NATO Mark_Rutte ."]
    assert not is_segmented("Hà Nội ngày 10/7") and not is_segmented("___ _x y_")


def test_normalisation_steps():
    assert normalize("Hòa  bình,   thủy lợi và sức khỏe.") == "Hoà bình , thuỷ lợi và sức khoẻ ."
    assert normalize("<p>Ông&nbsp;Zelensky</p>") == "Ông Zelensky"
    assert normalize("giá 1.5 triệu ở TP.HCM...") == "giá 1.5 triệu ở TP.HCM ..."
    assert normalize("HÒA") == "HOÀ" and normalize("hoàng") == "hoàng"  # only syllable-final


def test_nfc_and_nfd_give_identical_token_ids(tmp_path):
    nfc = "Ukraine kêu gọi phương Tây tăng cường viện trợ quân sự và hỗ trợ phòng không."
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    prepared = prepare([nfc, nfd], "pyvi")
    assert prepared[0] == prepared[1]
    tokenizer = phobert_tokenizer()
    ids = tokenizer(prepared)["input_ids"]
    assert ids[0] == ids[1] and tokenizer.unk_token_id not in ids[0]


def test_missing_java_gives_a_clear_error_at_creation(monkeypatch):
    monkeypatch.setattr(text.shutil, "which", lambda name: None)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    text.get_segmenter.cache_clear()
    try:
        with pytest.raises(SegmenterUnavailableError) as err:
            text.get_segmenter("rdrsegmenter")
        message = str(err.value)
        assert "Java" in message and "underthesea" in message and "pyvi" in message
    finally:
        text.get_segmenter.cache_clear()


def test_unknown_segmenter():
    with pytest.raises(ValueError, match="unknown segmenter"):
        prepare(["xin chào"], "jieba")


def test_sentence_splitting():
    paragraph = (
        "Ông Zelensky tới Washington hôm 21/12. TP. HCM mưa lớn! "
        '"Chúng tôi cần thêm Patriot." Giá tăng 1.5 lần.\nDòng mới không dấu chấm'
    )
    assert split_sentences(paragraph) == [
        "Ông Zelensky tới Washington hôm 21/12.",
        "TP. HCM mưa lớn!",
        '"Chúng tôi cần thêm Patriot."',
        "Giá tăng 1.5 lần.",
        "Dòng mới không dấu chấm",
    ]
    assert split_sentences("   ") == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80))
def test_prepare_never_raises_and_is_idempotent(s):
    for backend in ("none", "pyvi"):
        once = prepare([s], backend)
        assert isinstance(once[0], str)
        assert prepare(once, backend) == once


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "Hòa",
                "bình",
                "ở",
                "Kiev",
                "NATO",
                ",",
                ".",
                "Gaza",
                "viện",
                "trợ",
                "quân",
                "sự",
                "(",
                ")",
                "1.5",
                '"',
                "thủy",
                "lợi",
            ]
        ),
        max_size=25,
    )
)
def test_prepare_is_idempotent_on_vietnamese_like_text(words):
    s = " ".join(words)
    for backend in ("pyvi", "underthesea"):
        once = prepare([s], backend)
        assert prepare(once, backend) == once


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Quân đội <Israel tấn công Gaza> hôm nay", "Quân đội <Israel tấn công Gaza> hôm nay"),
        ("x&lt;y và z&gt;w", "x<y và z>w"),
        ("giá <a và b> nhé", "giá <a và b> nhé"),
        ('<img alt="Ảnh: Gaza" src=x.jpg/> Kiev <br> nhận </p >', "Kiev nhận"),
        ("&lt;b&gt;Viện trợ&lt;/b&gt; <!-- ghi chú --> mới", "Viện trợ mới"),
        ("mở <!-- không đóng", "mở <!-- không đóng"),
    ],
)
def test_only_real_markup_is_stripped(raw, expected):
    assert normalize(raw) == expected
    assert normalize(expected) == expected


def test_lone_surrogates_are_refused_with_their_index():
    with pytest.raises(ValueError, match=r"texts\[1\]: lone surrogate '\\ud800' at character 5"):
        prepare(["Kiev", "Gaza \ud800"], "pyvi")


def test_lines_break_only_at_newlines():
    assert text.split_lines("a\fb\u2028c\r\nd\re\nf") == ["a\fb\u2028c", "d", "e", "f"]
    assert split_sentences("Một câu.\u2029Hai câu.\fvẫn hai") == ["Một câu.", "Hai câu.\fvẫn hai"]


@pytest.mark.parametrize(
    "adversarial",
    ["A. " * 100_000, "<!-- " * 100_000, '<a x="' * 100_000, "&amp;" * 100_000, "<p>" * 100_000],
)
def test_text_steps_stay_linear_on_adversarial_input(adversarial):
    import time

    start = time.perf_counter()
    split_sentences(adversarial)
    normalize(adversarial)
    assert time.perf_counter() - start < 5  # quadratic would take minutes at this size
