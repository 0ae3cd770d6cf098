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
import threading
import unicodedata
from collections.abc import Callable, Sequence

from vitopic.errors import VitopicError

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
_INVISIBLE_RE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PUNCT = set(".,;:!?()[]{}\"'“”‘’«»…")
_SEGMENTED_RE = re.compile(r"[^\s_]_+[^\s_]")
_MAX_ROUNDS = 4
_DANGLING_RE = re.compile(r"(?<!\S)_+|_+(?!\S)")


def _split_punct(token: str) -> list[str]:
    """Split leading and trailing punctuation off a token; keep inner ones (1.5, TP.HCM)."""
    if all(ch in _PUNCT for ch in token):
        return [token]
    lead, trail = [], []
    while token and token[0] in _PUNCT:
        lead.append(token[0])
        token = token[1:]
    while token and token[-1] in _PUNCT:
        trail.insert(0, token[-1])
        token = token[:-1]
    return [*_merge_dots(lead), token, *_merge_dots(trail)]


def _merge_dots(chars: list[str]) -> list[str]:
    out: list[str] = []
    for ch in chars:
        if ch == "." and out and set(out[-1]) == {"."}:
            out[-1] += ch
        else:
            out.append(ch)
    return out


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


def normalize(text: str) -> str:
    """NFC, old-style tone marks, no HTML tags or invisible characters, tidy spaces, punctuation split."""
    for _ in range(_MAX_UNESCAPE_ROUNDS):  # until no entity or tag is left: idempotent
        previous, text = text, _strip_tags(html.unescape(text))
        if text == previous:
            break
    text = unicodedata.normalize("NFC", _INVISIBLE_RE.sub("", text))
    text = _TONE_RE.sub(lambda m: _TONES[m.group(1)], text)
    return " ".join(piece for token in text.split() for piece in _split_punct(token))


def is_segmented(text: str) -> bool:
    """True when `_` joins two characters somewhere, as in VnCoreNLP or pyvi output (`Hà_Nội`).

    Such text is never segmented again, which also makes `prepare` idempotent.
    """
    return bool(_SEGMENTED_RE.search(text))


# --- segmenter backends --------------------------------------------------------------------

Segmenter = Callable[[list[str]], list[str]]
_RDR_LOCK = threading.Lock()


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
    rdr = _require("python_rdrsegmenter", "rdrsegmenter")
    with _RDR_LOCK:  # the JVM starts here, once per process
        segmenter = rdr.load_segmenter()

    def segment(texts: list[str]) -> list[str]:
        with _RDR_LOCK:
            return [str(segmenter.tokenize(t)) for t in texts]

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
    for _ in range(_MAX_ROUNDS):
        if not todo:
            break
        segmented = _segment_in_chunks(get_segmenter(segmenter), [out[i] for i in todo])
        changed = []
        for i, seg in zip(todo, segmented, strict=True):
            # A backend may join a word to punctuation ("A_«"); once the punctuation is split off,
            # drop the `_` left dangling at a word's edge.
            new = " ".join(_DANGLING_RE.sub("", normalize(seg)).split())
            if new != out[i] and not is_segmented(new):
                changed.append(i)
            out[i] = new
        todo = changed
    return out


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
_BOUNDARY_RE = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+(?=[\"'“‘«(\[]?[^\W_a-zà-ỹđ])")


_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # not str.splitlines: form feed, U+2028 stay in a line
# How far back from a stop to look for the word it ends: enough for any abbreviation above and
# its dots; a longer word is cut, and a cut word is never an abbreviation or an initial.
_TAIL_CHARS = 10


def split_lines(text: str) -> list[str]:
    """Lines of `text`, broken at \\n, \\r\\n and \\r only (as files and JSONL have them)."""
    return _LINE_BREAK_RE.split(text)


def split_sentences(text: str) -> list[str]:
    """Split a paragraph or article into sentences (line breaks always end one). Linear time."""
    sentences: list[str] = []
    for line in split_lines(text):
        start = 0
        for match in _BOUNDARY_RE.finditer(line):
            # Only the word before the stop matters, and only when it is short (an initial or an
            # abbreviation): look at a bounded tail, so skipped stops cost nothing.
            tail = line[max(start, match.start() - _TAIL_CHARS) : match.start()]
            words = tail.split()
            last = words[-1].rstrip(".").lower() if words else ""
            if len(last) <= 1 or last in _ABBREVIATIONS:
                continue
            sentences.append(line[start : match.end()].strip())
            start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if s]
