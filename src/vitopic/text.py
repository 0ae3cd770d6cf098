"""Vietnamese text preparation: normalisation, word segmentation and sentence splitting.

PhoBERT was pretrained on NFC text with old-style tone marks, punctuation split off and words
segmented by VnCoreNLP's RDRSegmenter (syllables joined by `_`). `prepare` reproduces that, the
same way at training and at prediction time.
"""

from __future__ import annotations

import functools
import html
import os
import re
import shutil
import unicodedata
from collections.abc import Callable, Sequence

from vitopic.errors import VitopicError
from vitopic.rdrsegmenter import RdrSegmenterProcess

JAVA_FREE = ("underthesea", "pyvi", "none")


class SegmenterUnavailableError(VitopicError, RuntimeError):
    """A segmenter backend cannot run here (missing package or missing Java)."""


# --- normalisation -------------------------------------------------------------------------


def _tone_map() -> dict[str, str]:
    """New-style -> old-style tone placement for syllable-final oa, oe, uy (hòa -> hoà)."""
    marks = {"a": "àáảãạ", "e": "èéẻẽẹ", "y": "ỳýỷỹỵ"}
    firsts = {"o": "òóỏõọ", "u": "ùúủũụ"}
    table = {}
    for first, second in (("o", "a"), ("o", "e"), ("u", "y")):
        for marked_first, marked_second in zip(firsts[first], marks[second], strict=True):
            new, old = marked_first + second, first + marked_second
            for case in (str.lower, str.capitalize, str.upper):
                table[case(new)] = case(old)
    return table


_TONES = _tone_map()
_TONE_RE = re.compile("(" + "|".join(_TONES) + r")(?![^\W\d_])")
# Only real HTML: a known element name, then well-formed attributes (ASCII names), so that text in
# angle brackets ("<Israel tấn công Gaza>", "x<y và z>w") is kept. Every pattern is bounded: linear.
_ELEMENTS = frozenset(
    """
    a abbr address area article aside audio b base bdi bdo big blockquote body br button
    canvas caption center cite code col colgroup data datalist dd del details dfn dialog div
    dl dt em embed fieldset figcaption figure font footer form frame h1 h2 h3 h4 h5 h6 head
    header hgroup hr html i iframe img input ins kbd label legend li link main map mark meta
    meter nav noscript object ol optgroup option output p param picture pre progress q rp rt
    ruby s samp script section select small source span strike strong style sub summary sup
    svg table tbody td template textarea tfoot th thead time title tr track tt u ul var
    video wbr
""".split()  # noqa: SIM905
)
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]{0,15})([^<>]{0,1000})>")
_ATTRS_RE = re.compile(
    r"(?:\s+[A-Za-z_:@][-A-Za-z0-9_:.@]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*\s*/?"
)
_MAX_UNESCAPE_ROUNDS = 8  # entities escaped this many times over are left as they are
_PUNCT = set(".,;:!?()[]{}\"'“”‘’«»…")
# Invisible characters outside category Cf (Unicode's Default_Ignorable_Code_Point): the combining
# grapheme joiner, Hangul fillers and Khmer inherent vowels; variation selectors are found by name.
_INVISIBLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
_IDEOGRAPHIC = {"\u3002": ".", "\u3001": ","}  # 。、: punctuation NFKC leaves as it is
# Full-width and ideographic punctuation includes its own space: a word right after a stop, comma
# or closing bracket (or right before an opening one) is a new word.
_CJK_SPACED_RE = re.compile(
    "([\u3001\u3002\uff0c\uff01\uff1f\uff1a\uff1b\uff61\uff64\uff09\uff3d\uff5d])(?=[^\\s\\d])"
    "|(?<=\\S)([\uff08\uff3b\uff5b])"
)
_MAX_WORD_CHARS = 100  # longer tokens are cut (no real word is this long; BPE is quadratic per word)
_SEGMENTED_RE = re.compile(r"[^\s_]_+[^\s_]")
_MAX_ROUNDS = 4
_DANGLING_RE = re.compile(r"(?<!\S)_+|_+(?!\S)")


def _split_punct(token: str) -> list[str]:
    """Split leading and trailing punctuation off a token; keep inner ones (1.5, TP.HCM)."""
    start, end = 0, len(token)
    while start < end and token[start] in _PUNCT:
        start += 1
    if start == end:
        return [token]
    while token[end - 1] in _PUNCT:
        end -= 1
    return [*_merge_dots(token[:start]), token[start:end], *_merge_dots(token[end:])]


def _merge_dots(chars: str) -> list[str]:
    """Punctuation characters one by one, except a run of dots, kept whole ("...")."""
    return re.findall(r"\.+|.", chars, re.DOTALL)


def _cut(token: str) -> list[str]:
    """A token of at most `_MAX_WORD_CHARS` characters as it is; a longer one in pieces of that size."""
    return [token[i : i + _MAX_WORD_CHARS] for i in range(0, len(token), _MAX_WORD_CHARS)]


def _tag(match: re.Match) -> str:
    closing, name, rest = match.groups()
    real = name.lower() in _ELEMENTS and (_ATTRS_RE.fullmatch(rest) if not closing else not rest.strip())
    return " " if real else match.group(0)


def _strip_comments(text: str) -> str:
    """Remove `<!-- ... -->` comments in one pass (an unclosed one is kept as text)."""
    out, pos = [], 0
    while (start := text.find("<!--", pos)) >= 0:
        end = text.find("-->", start + 4)
        if end < 0:
            break
        out.append(text[pos:start])
        out.append(" ")
        pos = end + 3
    out.append(text[pos:])
    return "".join(out)


def _strip_tags(text: str) -> str:
    return _TAG_RE.sub(_tag, _strip_comments(text)) if "<" in text else text


def surrogate_at(text: str) -> int:
    """Index of the first lone surrogate (text that is not valid Unicode), or -1."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return err.start
    return -1


def check_unicode(texts: Sequence[str]) -> None:
    """Refuse text with lone surrogates (no valid encoding exists), naming the index: one policy
    for prediction, training data and output files."""
    for i, t in enumerate(texts):
        if (at := surrogate_at(t)) >= 0:
            raise ValueError(
                f"texts[{i}]: lone surrogate {t[at]!r} at character {at} "
                "(not valid Unicode; decode the source with errors='replace')"
            )


@functools.lru_cache(maxsize=8192)
def _replacement(ch: str) -> str | None:
    """What cleaning makes of one character: None keeps it, "" drops it, else its folded form.

    Dropped: control characters (Cc) that are not whitespace, format characters (Cf: zero-width
    spaces and joiners, bidi controls, soft hyphens) and the other invisible ones. Full-width and
    half-width forms become their ordinary form (NFKC), 。 and 、 a full stop and a comma.
    """
    category = unicodedata.category(ch)
    if category == "Cc":
        return None if ch.isspace() else ""
    if category == "Cf" or ch in _INVISIBLE or "VARIATION SELECTOR" in unicodedata.name(ch, ""):
        return ""
    folded = ch
    if unicodedata.decomposition(ch).startswith(("<wide>", "<narrow>")):
        folded = unicodedata.normalize("NFKC", ch)
    folded = _IDEOGRAPHIC.get(folded, folded)
    return None if folded == ch else folded


def _clean_characters(text: str) -> str:
    """Apply `_replacement`, compose (NFC), then drop combining marks that follow no letter or digit."""
    chars = set(text)
    table = {ord(ch): rep for ch in chars if (rep := _replacement(ch)) is not None}
    if table:
        text = _CJK_SPACED_RE.sub(lambda m: f"{m[1]} " if m[1] else f" {m[2]}", text).translate(table)
    text = unicodedata.normalize("NFC", text)
    marks = "".join(re.escape(ch) for ch in chars if unicodedata.category(ch)[0] == "M")
    if marks:  # a mark's base is a letter or digit, maybe with marks of its own between
        text = re.sub(f"(?<![^\\W_]|[{marks}])[{marks}]+", "", text)
    return text


def clean(text: str) -> str:
    """`text` as it reads: HTML entities decoded and tags removed, no invisible characters,
    NFC, ordinary-width punctuation (see `_replacement`). Spacing and tone marks are kept as they
    are: `split_sentences` splits this text, and `normalize` finishes it."""
    for _ in range(_MAX_UNESCAPE_ROUNDS):  # until nothing changes: idempotent
        previous, text = text, _strip_tags(_clean_characters(html.unescape(text)))
        if text == previous:
            break
    return text


def normalize(text: str) -> str:
    """`clean`, then old-style tone marks, tidy spaces, punctuation split off, overlong words cut."""
    text = _TONE_RE.sub(lambda m: _TONES[m.group(1)], clean(text))
    return " ".join(piece for token in text.split() for piece in _pieces(token))


def _pieces(token: str) -> list[str]:
    """A token with its edge punctuation split off and overlong words cut (most tokens: itself)."""
    if len(token) <= _MAX_WORD_CHARS and token[0] not in _PUNCT and token[-1] not in _PUNCT:
        return [token]
    return [cut for piece in _split_punct(token) for cut in _cut(piece)]


def is_segmented(text: str) -> bool:
    """True when `_` joins two characters somewhere, as in VnCoreNLP or pyvi output (`Hà_Nội`).

    Such text is never segmented again, which also makes `prepare` idempotent.
    """
    return bool(_SEGMENTED_RE.search(text))


# --- segmenter backends --------------------------------------------------------------------

Segmenter = Callable[[list[str]], list[str]]


def _require(module: str, backend: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as err:
        raise SegmenterUnavailableError(
            f"segmenter {backend!r} needs the package that provides {module!r}: "
            "pip install 'vitopic[segmenters]'"
        ) from err


def java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    return shutil.which("java") is not None or bool(home and os.path.isdir(home))


def _rdrsegmenter() -> Segmenter:
    if not java_available():
        raise SegmenterUnavailableError(
            "segmenter 'rdrsegmenter' (VnCoreNLP's RDRSegmenter) needs Java 8+, and no `java` was "
            "found on PATH or in JAVA_HOME. Install a JRE, or choose a Java-free backend: "
            + ", ".join(JAVA_FREE)
        )
    _require("python_rdrsegmenter", "rdrsegmenter")
    segment = RdrSegmenterProcess(SegmenterUnavailableError)
    segment([])  # starts the JVM now, so a segmenter that cannot run fails here
    return segment


def _underthesea() -> Segmenter:
    word_tokenize = _require("underthesea", "underthesea").word_tokenize
    return lambda texts: [word_tokenize(t, format="text") for t in texts]


def _pyvi() -> Segmenter:
    tokenizer = _require("pyvi.ViTokenizer", "pyvi")
    return lambda texts: [tokenizer.tokenize(t) for t in texts]


_BACKENDS: dict[str, Callable[[], Segmenter]] = {
    "rdrsegmenter": _rdrsegmenter,
    "underthesea": _underthesea,
    "pyvi": _pyvi,
    "none": lambda: lambda texts: list(texts),
}


@functools.cache
def get_segmenter(name: str) -> Segmenter:
    """The backend `name`, created once per process; fails here, clearly, if it cannot run."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown segmenter {name!r}; choose one of {list(_BACKENDS)}")
    return _BACKENDS[name]()


def prepare(texts: Sequence[str], segmenter: str) -> list[str]:
    """PhoBERT-ready text: normalised, then word-segmented unless it already is.

    Idempotent: the result is either segmented (and so passed through next time) or a fixed
    point of the segmenter, which is re-applied (a few rounds at most) until it is one.
    """
    check_unicode(texts)
    out = [normalize(t) for t in texts]
    if segmenter == "none":
        return out
    todo = [i for i, t in enumerate(out) if t and not is_segmented(t)]
    if not todo:  # nothing to segment: the segmenter is not even created (no JVM, no Java needed)
        return out
    segment = get_segmenter(segmenter)
    done = _segmented.setdefault(segment, {})
    fresh = {i: out[i] for i in todo if out[i] not in done}  # to segment, by their text now
    for i in todo:
        out[i] = done.get(out[i], out[i])
    todo = list(fresh)
    for _ in range(_MAX_ROUNDS):
        if not todo:
            break
        segmented = _segment_in_chunks(segment, [out[i] for i in todo])
        changed = []
        for i, seg in zip(todo, segmented, strict=True):
            # A backend may join a word to punctuation ("A_«"); once the punctuation is split off,
            # drop the `_` left dangling at a word's edge.
            new = " ".join(_DANGLING_RE.sub("", normalize(seg)).split())
            if new != out[i] and not is_segmented(new):
                changed.append(i)
            out[i] = new
        todo = changed
    if len(done) + len(fresh) > _MEMO_TEXTS:
        done.clear()
    done.update((text, out[i]) for i, text in fresh.items() if len(text) <= _MEMO_CHARS)
    return out


# Segmenting is the slow step (RDRSegmenter runs in a JVM): each segmenter's results are kept for
# the process's life, so a sentence prepared once (training, then the baseline, the next seed, the
# same article again) is segmented once. Bounded (sentence-sized texts, forgotten all at once
# when full): tens of MB at most.
_MEMO_TEXTS = 50_000
_MEMO_CHARS = 1_000
_segmented: dict[Segmenter, dict[str, str]] = {}


_CHUNK_WORDS = 400  # segmenters are run on at most this many tokens at a time (linear time)


def _segment_in_chunks(segment: Segmenter, texts: list[str]) -> list[str]:
    """`segment(texts)`, with any text over `_CHUNK_WORDS` tokens cut at spaces into chunks."""
    owners, chunks = [], []
    for i, t in enumerate(texts):
        words = t.split(" ")
        for start in range(0, len(words), _CHUNK_WORDS):
            owners.append(i)
            chunks.append(" ".join(words[start : start + _CHUNK_WORDS]))
    out: list[list[str]] = [[] for _ in texts]
    for i, seg in zip(owners, segment(chunks), strict=True):
        out[i].append(seg)
    return [" ".join(parts) for parts in out]


# --- sentence splitting --------------------------------------------------------------------

_ABBREVIATIONS = {"tp", "mr", "mrs", "ms", "dr", "st", "ths", "ts", "pgs", "gs", "bs", "no", "vs"}
_OPENERS = "\"'“‘«(["
# A stop, closing quotes or brackets and space, before maybe an opening one and a word character:
# a boundary when that character is not a lowercase letter (`_starts_sentence`, by category).
_BOUNDARY_RE = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+(?=[\"'“‘«(\[]?\w)")


_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # not str.splitlines: form feed, U+2028 stay in a line
# How far back from a stop to look for the word it ends: enough for any abbreviation above and
# its dots; a longer word is cut, and a cut word is never an abbreviation or an initial.
_TAIL_CHARS = 10


def split_lines(text: str) -> list[str]:
    """Lines of `text`, broken at \\n, \\r\\n and \\r only (as files and JSONL have them)."""
    return _LINE_BREAK_RE.split(text)


def _starts_sentence(ch: str) -> bool:
    """A capital (of any script: Đ, Ở, Ư as much as A), a digit or a caseless letter; not `_`."""
    return ch != "_" and unicodedata.category(ch) != "Ll"


def _closes_sentence(line: str, start: int, stop: int) -> bool:
    """Whether the stop before index `stop` ends a sentence: not the dot of an initial or an
    abbreviation ("A.", "TP."), attached or apart ("TP . HCM", as `normalize` writes it)."""
    if line[stop - 1] != ".":
        return True
    # Only a short word matters: look at a bounded tail, so each stop costs a bounded amount.
    low = max(start, stop - _TAIL_CHARS)
    words = line[low:stop].split()
    while words and not words[-1].strip("."):
        words.pop()  # dots apart from their word
    if not words:
        return False
    cut = len(words) == 1 and low > start and not line[low - 1].isspace() and not line[low].isspace()
    word = words[-1].rstrip(".").lower()
    return cut or (len(word) > 1 and word not in _ABBREVIATIONS)


def split_sentences(text: str) -> list[str]:
    """Split a paragraph or article into sentences (line breaks always end one). Linear time.

    The text is cleaned first (`clean`: entities, tags, invisible characters, NFC, full-width
    punctuation), so every way of writing the same text splits the same way.
    """
    sentences: list[str] = []
    for line in split_lines(clean(text)):
        start = 0
        for match in _BOUNDARY_RE.finditer(line):
            first = match.end() + (line[match.end()] in _OPENERS)
            if _starts_sentence(line[first]) and _closes_sentence(line, start, match.start()):
                sentences.append(line[start : match.end()].strip())
                start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if s]
