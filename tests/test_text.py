import json
import unicodedata

import pytest
from helpers import DATA, HANG
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


def test_text_with_nothing_to_segment_never_creates_the_segmenter(monkeypatch):
    def unavailable():
        raise SegmenterUnavailableError("not installed")

    monkeypatch.setitem(text._BACKENDS, "pyvi", unavailable)
    text.get_segmenter.cache_clear()
    try:
        assert prepare(["Hà_Nội mưa", "", "<br>"], "pyvi") == ["Hà_Nội mưa", "", ""]
        with pytest.raises(SegmenterUnavailableError):
            prepare(["Hà Nội mưa"], "pyvi")
    finally:
        text.get_segmenter.cache_clear()


def test_a_sentence_is_segmented_once_per_segmenter(monkeypatch):
    seen = []

    def segment(texts):
        seen.extend(texts)
        return [t.replace("Hà Nội", "Hà_Nội") for t in texts]

    monkeypatch.setitem(text._BACKENDS, "pyvi", lambda: lambda texts: segment(texts))
    text.get_segmenter.cache_clear()
    try:
        assert prepare(["Hà Nội mưa.", "Trời nắng"], "pyvi") == ["Hà_Nội mưa .", "Trời nắng"]
        assert prepare(["Trời nắng", "Hà Nội mưa.", "Gió"], "pyvi") == ["Trời nắng", "Hà_Nội mưa .", "Gió"]
        assert seen == ["Hà Nội mưa .", "Trời nắng", "Gió"]
        text.get_segmenter.cache_clear()  # a new segmenter remembers nothing of the old one
        prepare(["Trời nắng"], "pyvi")
        assert seen[-1] == "Trời nắng" and len(seen) == 4
    finally:
        text.get_segmenter.cache_clear()


needs_java = pytest.mark.skipif(not text.java_available(), reason="needs Java")


def _segment_in_fork(queue) -> None:
    queue.put(text.get_segmenter("rdrsegmenter")(["Hà Nội mưa"]))


@needs_java
def test_rdrsegmenter_runs_its_jvm_outside_this_process_and_survives_a_fork():
    import multiprocessing

    import jnius_config

    segment = text.get_segmenter("rdrsegmenter")
    assert segment(["Hà Nội mưa", "", "Liên Hợp Quốc\nhọp"]) == ["Hà_Nội mưa", "", "Liên_Hợp_Quốc họp"]
    assert not jnius_config.vm_running  # torch's process never hosts the JVM
    queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_segment_in_fork, args=(queue,))
    child.start()
    assert queue.get(timeout=HANG) == ["Hà_Nội mưa"]  # the fork started its own segmenter
    child.join()
    assert segment(["Bộ Quốc phòng"]) == ["Bộ Quốc_phòng"]  # and the parent's pipe is intact


@needs_java
def test_a_dead_rdrsegmenter_is_named_then_restarted():
    segment = text.RdrSegmenterProcess(SegmenterUnavailableError)  # its own child, not the cached one
    segment(["Hà Nội"])
    segment._proc.kill()
    with pytest.raises(SegmenterUnavailableError, match=r"rdrsegmenter.*stopped \(exit code -9\)"):
        segment(["Hà Nội"])
    assert segment(["Hà Nội"]) == ["Hà_Nội"]


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
    assert split_sentences("Một câu.\rHai\r\nBa") == ["Một câu.", "Hai", "Ba"]


def _work(step, value: str) -> float:
    """CPU seconds `step(value)` takes, the least of three runs (a scheduling hiccup is not work)."""
    import time

    def once() -> float:
        start = time.process_time()
        step(value)
        return time.process_time() - start

    return min(once() for _ in range(3))


_TOKENIZER = phobert_tokenizer()
STEPS = {
    "split_sentences": split_sentences,
    "normalize": normalize,
    "prepare": lambda t: prepare([t], "pyvi"),
    "tokenize": lambda t: _TOKENIZER(prepare([t], "none"), add_special_tokens=False, verbose=False),
}
ADVERSARIAL = {  # input of length about n, for a given n
    "A. repeated": lambda n: "A. " * (n // 3),
    "comment openers": lambda n: "<!-- " * (n // 5),
    "unclosed attributes": lambda n: '<a x="' * (n // 6),
    "entities": lambda n: "&amp;" * (n // 5),
    "tags": lambda n: "<p>" * (n // 3),
    "one unbroken word": lambda n: ("Ukraine" + "abcdeghiklmnopqrstuvxy" * n)[:n],
    "no punctuation": lambda n: ("viện trợ Kiev hôm nay " * n)[:n],
    "leading brackets": lambda n: "(" * n + "x",
    "dots": lambda n: "x" + "." * n,
    "zero-width spaces": lambda n: "Kiev\u200b" * (n // 5),
}


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("adversarial", ADVERSARIAL)
def test_text_steps_stay_linear_on_adversarial_input(step, adversarial):
    """Four times the input costs about four times the work: quadratic would be sixteen."""
    make, run = ADVERSARIAL[adversarial], STEPS[step]
    run(make(1000))  # warm-up: segmenter, caches
    small, large = _work(run, make(8000)), _work(run, make(32000))
    assert large <= 10 * max(small, 0.005), (small, large)


CAPITALS = sorted(
    {
        unicodedata.normalize("NFC", v + tone)
        for v in "AĂÂEÊIOÔƠUƯY"
        for tone in ("", *"\u0300\u0301\u0309\u0303\u0323")
    }
    | set("BCDĐFGHJKLMNPQRSTVWXZ")
)


def test_every_vietnamese_capital_starts_a_sentence():
    assert len(CAPITALS) == 72 + 21
    for capital in CAPITALS:
        for form in ("NFC", "NFD"):
            paragraph = unicodedata.normalize(form, f"Trời mưa. {capital}ây đổ. {capital.lower()}à nhé")
            assert split_sentences(paragraph) == [
                "Trời mưa.",
                unicodedata.normalize("NFC", f"{capital}ây đổ. {capital.lower()}à nhé"),
            ], (capital, form)
    assert split_sentences("Gaza bị tấn công . Đà Nẵng mưa ! Ở Huế , TP . HCM nắng") == [
        "Gaza bị tấn công .",
        "Đà Nẵng mưa !",
        "Ở Huế , TP . HCM nắng",
    ]  # normalised text (stops apart) splits as the raw text does


CLEAN = "Mỹ viện trợ cho Ukraine, NATO họp. Đức gửi thêm Patriot. Ở Gaza, Israel không kích Rafah."
VARIANTS = {
    "NFD": unicodedata.normalize("NFD", CLEAN),
    "RTL override in a word": CLEAN.replace("Ukraine", "Ukr\u202eaine"),
    "bidi isolates": CLEAN.replace("NATO", "\u2066NATO\u2069"),
    "zero-width space in a word": CLEAN.replace("Ukraine", "U\u200bkraine"),
    "zero-width space between sentences": CLEAN.replace(". Đức", ". \u200bĐức").replace(". Ở", ".\u200b Ở"),
    "word joiner, BOM, soft hyphen": CLEAN.replace("Patriot", "Pa\u2060tri\u00adot\ufeff"),
    "Mongolian vowel separator": CLEAN.replace("Rafah", "Ra\u180efah"),
    "combining grapheme joiner": CLEAN.replace("Ukraine", "Ukr\u034faine"),
    "variation selectors": CLEAN.replace("Gaza", "Ga\ufe0fza\U000e0100"),
    "combining marks without a base": CLEAN.replace("Ukraine,", "Ukraine \u0301\u0323,").replace(
        "Mỹ", "\u0300Mỹ"
    ),
    "full-width 。 and ，": CLEAN.replace(", ", "，").replace(". ", "。"),
    "full-width punctuation with spaces": CLEAN.replace(",", "，").replace(".", "．"),
    "half-width ｡ and full-width letters": CLEAN.replace("Patriot.", "Ｐａｔｒｉｏｔ｡"),
    "escaped zero-width space": CLEAN.replace("Ukraine", "Ukr&#8203;aine"),
    "control characters": CLEAN.replace("NATO", "NA\x07TO\x00"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_invisible_and_full_width_variants_read_as_the_clean_text(variant):
    """One text, one answer: the same words and the same sentences, whatever the encoding tricks."""
    text = VARIANTS[variant]
    assert normalize(text) == normalize(CLEAN)
    assert [normalize(s) for s in split_sentences(text)] == [normalize(s) for s in split_sentences(CLEAN)]
    assert len(split_sentences(CLEAN)) == 3


def test_whitespace_controls_separate_words():
    assert normalize("Kiev\rNATO\x0bGaza\x1cMỹ\x85Nga") == "Kiev NATO Gaza Mỹ Nga"
    assert normalize("\u0301\u0300") == "" and normalize("a\u0301") == "á"
    assert normalize("Gaza？Kiev！NATO：（Mỹ）") == normalize("Gaza? Kiev! NATO: (Mỹ)")


def test_overlong_words_are_cut():
    word = "x" * 250
    assert normalize(word).split() == ["x" * 100, "x" * 100, "x" * 50]
    assert prepare([normalize(word)], "pyvi") == [normalize(word)]  # a fixed point


# prepare(corpus/test.jsonl, "none") as it was before the sentence and invisible-character fixes:
# ordinary clean text (and so pretraining data) prepares byte for byte as it did.
TEST_SPLIT_SHA256 = "04754b7c4af537ff0e7491a44965b7fc2e66ca1cf01771746a4788491432a803"
FIRST_THREE_PYVI = [
    "Du_khách Nga quay lại Nha_Trang đông_đúc sau khi đường_bay thẳng từ Moscow , Novosibirsk và "
    "Irkutsk được nối lại , nhiều khách_sạn ven biển Trần_Phú kín phòng dịp Tết dương_lịch .",
    "Bộ Tài_chính Mỹ công_bố danh_sách trừng_phạt mới nhắm vào hơn 300 cá_nhân và tổ_chức giúp Nga né "
    "lệnh cấm_vận để tiếp_tục cuộc_chiến ở Ukraine , trong đó có nhiều công_ty ở Trung_Quốc và UAE .",
    "Đồng ruble phục_hồi mạnh lên mức khoảng 55 ruble đổi 1 USD vào tháng 6 / 2022 , cao nhất trong "
    "bảy năm , nhờ nguồn thu ngoại_tệ dồi_dào từ xuất_khẩu năng_lượng .",
]


def test_clean_corpus_text_prepares_as_before():
    import hashlib

    texts = [json.loads(line)["text"] for line in (DATA / "test.jsonl").read_text("utf-8").splitlines()]
    prepared = "\n".join(prepare(texts, "none"))
    assert hashlib.sha256(prepared.encode()).hexdigest() == TEST_SPLIT_SHA256
    assert prepare(texts[:3], "pyvi") == FIRST_THREE_PYVI
