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

from vitopic.config import SEGMENTERS
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
_TAG_RE = re.compile(r"</?[A-Za-z][^<>]{0,200}>|<!--.*?-->", re.DOTALL)
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


def normalize(text: str) -> str:
    """NFC, old-style tone marks, no HTML tags or invisible characters, tidy spaces, punctuation split."""
    previous = None
    while text != previous:  # until no entity or tag is left, so that normalize is idempotent
        previous, text = text, _TAG_RE.sub(" ", html.unescape(text))
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
assert set(_BACKENDS) == set(SEGMENTERS)


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
    out = [normalize(t) for t in texts]
    if segmenter == "none":
        return out
    todo = [i for i, t in enumerate(out) if t and not is_segmented(t)]
    for _ in range(_MAX_ROUNDS):
        if not todo:
            break
        segmented = get_segmenter(segmenter)([out[i] for i in todo])
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


# --- sentence splitting --------------------------------------------------------------------

_ABBREVIATIONS = {"tp", "mr", "mrs", "ms", "dr", "st", "ths", "ts", "pgs", "gs", "bs", "no", "vs"}
_BOUNDARY_RE = re.compile(r"(?<=[.!?…])[\"'”’»)\]]*\s+(?=[\"'“‘«(\[]?[^\W_a-zà-ỹđ])")


def split_sentences(text: str) -> list[str]:
    """Split a paragraph or article into sentences (newlines always end one)."""
    sentences: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _BOUNDARY_RE.finditer(line):
            words = line[start:match.start()].split()
            last = words[-1].rstrip(".").lower() if words else ""
            if len(last) <= 1 or last in _ABBREVIATIONS:
                continue
            sentences.append(line[start:match.end()].strip())
            start = match.end()
        sentences.append(line[start:].strip())
    return [s for s in sentences if s]
