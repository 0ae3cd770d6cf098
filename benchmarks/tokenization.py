"""How vitopic's text preparation fits PhoBERT's real vocabulary, per segmenter and tone-mark style.

    python benchmarks/tokenization.py [--splits test,dev] [--eval FILE.jsonl ...] [--limit N]
                                      [--segmenters rdrsegmenter,underthesea,pyvi,none]

For every input file, one markdown table with one row per (segmenter, tone marks):

- tone marks "old-style" is `vitopic.text.prepare` as shipped (`normalize` rewrites syllable-final
  oa/oe/uy to old-style placement, hóa -> hoá); "as written" is the same preparation with that one
  rewrite skipped (`tones_as_written`, below; text.py itself is not changed).
- a word is one whitespace token of the prepared text (syllables joined by `_`; for `none`, a
  syllable or a punctuation mark); pieces are PhoBERT's BPE tokens (`vitopic.tokenizer`, the shipped
  vocab.txt + bpe.codes), without <s> and </s>.
- single-token words: the share of words that are one vocabulary token (not <unk>).
- tokens/input, max and > 256: per input text, with <s> and </s> (PhoBERT's 256-token limit).
- word F1: micro F1 of word spans against rdrsegmenter's output on the same text with the same tone
  marks (as in benchmarks/segmentation.py; 1.000 for rdrsegmenter itself, n/a when rdrsegmenter is
  not among --segmenters or cannot run).
- sentences/s: `prepare` over all texts of the file, after the segmenter was started and warmed up.

rdrsegmenter's two rows are the same: VnCoreNLP's RDRSegmenter writes old-style tone marks itself
(hóa -> hoá), so with it vitopic's rewrite changes nothing; the script says so under a table when
a segmenter's output does not depend on the rewrite.

Then a table of how vocab.txt itself writes those tone marks: for each new-style/old-style pair
of the tone map, the vocabulary entries (`@@` stripped, lower-cased) that contain the form at a
syllable's end (not followed by a letter, not after `q`: "quý" is written so in both styles), and
the sum of their counts in vocab.txt's second column; with a conclusion computed from the totals.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from common import REPO, load_texts, table, timed
from segmentation import span_f1

SEGMENTERS = ("rdrsegmenter", "underthesea", "pyvi", "none")
REFERENCE = "rdrsegmenter"
TONES = ("old-style", "as written")
MAX_TOKENS = 256
PATTERNS = ("oa", "oe", "uy")
WARM_UP = 100  # texts each segmenter prepares (untimed) before it is timed


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def tones_as_written() -> Iterator[None]:
    """`vitopic.text.normalize` (and so `prepare`) without the old-style tone rewrite, for a while.

    `normalize` looks up each match in the module's `_TONES` map; an identity map for the duration
    keeps every other step (NFC, HTML, punctuation split, segmentation) exactly as it is.
    """
    import vitopic.text as text

    original = text._TONES
    text._TONES = {key: key for key in original}
    try:
        yield
    finally:
        text._TONES = original


def check_tone_switch() -> None:
    """Fail clearly if text.py changed so that `tones_as_written` no longer switches the rewrite."""
    from vitopic.text import normalize

    with tones_as_written():
        off = normalize("hóa")
    if (normalize("hóa"), off) != ("hoá", "hóa"):
        raise RuntimeError("vitopic.text no longer rewrites tones through `_TONES`: update tones_as_written")


def tone_context(tones: str) -> contextlib.AbstractContextManager:
    return tones_as_written() if tones == "as written" else contextlib.nullcontext()


def start_segmenters(names: Sequence[str], warm_up: list[str]) -> dict[str, str | None]:
    """Start each segmenter and warm it up on `warm_up` (a JVM's JIT needs more than one sentence):
    name -> None when it runs, else why it cannot."""
    from vitopic.text import get_segmenter, prepare

    status: dict[str, str | None] = {}
    for name in names:
        start = time.perf_counter()
        try:
            get_segmenter(name)
            prepare(warm_up, name)
        except Exception as err:  # ImportError, no Java, a JVM that fails to start: report, go on
            status[name] = reason = " ".join(str(err).split()) or type(err).__name__
            progress(f"segmenter {name}: unavailable ({type(err).__name__}: {reason})")
            continue
        status[name] = None
        progress(f"segmenter {name}: started in {time.perf_counter() - start:.1f} s")
    return status


class Fit:
    """What PhoBERT's tokenizer makes of prepared texts (per-word results cached across calls)."""

    def __init__(self) -> None:
        from vitopic.tokenizer import phobert_tokenizer

        # No truncation and no "longer than the maximum" warning: lengths are what is measured.
        self.tokenizer = phobert_tokenizer(max_length=10**9)
        self.unk = self.tokenizer.unk_token_id
        self.single: dict[str, bool] = {}

    def is_single(self, word: str) -> bool:
        if word not in self.single:
            ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            self.single[word] = len(ids) == 1 and ids[0] != self.unk
        return self.single[word]

    def measure(self, prepared: Sequence[str]) -> dict[str, float]:
        words = single = pieces = unk = 0
        lengths = []
        for text in prepared:
            ids = self.tokenizer(text)["input_ids"]  # with <s> and </s>
            lengths.append(len(ids))
            pieces += len(ids) - 2
            unk += ids.count(self.unk)
            for word in text.split():
                words += 1
                single += self.is_single(word)
        n = max(len(prepared), 1)
        return {
            "words/text": words / n,
            "pieces/word": pieces / max(words, 1),
            "single %": 100 * single / max(words, 1),
            "unk/1k": 1000 * unk / max(pieces, 1),
            "tokens/input": sum(lengths) / n,
            "max": max(lengths, default=0),
            "over %": 100 * sum(length > MAX_TOKENS for length in lengths) / n,
        }


HEADERS = [
    "segmenter",
    "tone marks",
    "words/text",
    "pieces/word",
    "single-token words %",
    "<unk> per 1k pieces",
    "tokens/input",
    "max tokens",
    f"> {MAX_TOKENS} tokens %",
    f"word F1 vs {REFERENCE}",
    "sentences/s",
]


def measure_file(
    texts: list[str], segmenters: Sequence[str], status: dict[str, str | None], fit: Fit
) -> tuple[list[list[str]], list[str]]:
    """The table rows, and the segmenters whose output is the same with and without the rewrite."""
    from vitopic.text import prepare

    outputs: dict[tuple[str, str], list[str]] = {}
    results: dict[tuple[str, str], tuple[dict[str, float], float]] = {}
    status = dict(status)
    for name in segmenters:
        for tones in TONES:
            if status[name] is not None:
                continue
            try:
                with tone_context(tones):
                    seconds, out = timed(lambda n=name: prepare(texts, n))
            except Exception as err:  # only the type: a message might quote the (private) text
                status[name] = f"failed on this file ({type(err).__name__})"
                progress(f"  {name}, {tones}: {status[name]}")
                continue
            outputs[name, tones] = out
            results[name, tones] = fit.measure(out), len(texts) / max(seconds, 1e-9)
            progress(f"  {name}, {tones}: {len(texts)} texts prepared in {seconds:.2f} s")
    rows = []
    for name in segmenters:
        if status[name] is not None:
            reason = str(status[name])
            short = reason if len(reason) <= 60 else reason[:57] + "..."
            rows.append([name, f"unavailable: {short}", *["-"] * (len(HEADERS) - 2)])
            continue
        for tones in TONES:
            m, rate = results[name, tones]
            reference = outputs.get((REFERENCE, tones))
            f1 = "n/a" if reference is None else f"{span_f1(outputs[name, tones], reference):.3f}"
            rows.append(
                [
                    name,
                    tones,
                    f"{m['words/text']:.1f}",
                    f"{m['pieces/word']:.3f}",
                    f"{m['single %']:.1f}",
                    f"{m['unk/1k']:.2f}",
                    f"{m['tokens/input']:.1f}",
                    str(m["max"]),
                    f"{m['over %']:.2f}",
                    f1,
                    f"{rate:.1f}",
                ]
            )
    same = [
        name
        for name in segmenters
        if all((name, t) in outputs for t in TONES) and len({tuple(outputs[name, t]) for t in TONES}) == 1
    ]
    return rows, same


def rewritten_words(texts: Sequence[str]) -> tuple[int, int, int]:
    """(words the old-style rewrite changes, texts with such a word, words in all) after normalize."""
    from vitopic.text import normalize

    changed = touched = total = 0
    for text in texts:
        old = normalize(text).split()
        with tones_as_written():
            written = normalize(text).split()
        diff = sum(a != b for a, b in zip(old, written, strict=True))
        changed, touched, total = changed + diff, touched + bool(diff), total + len(old)
    return changed, touched, total


# --- the vocabulary's own tone marks -------------------------------------------------------


def tone_pairs() -> list[tuple[str, str]]:
    """Lower-case (new-style, old-style) pairs of vitopic.text's tone map, in its order."""
    from vitopic.text import _TONES

    return [(new, old) for new, old in _TONES.items() if new == new.lower()]


def final_form(form: str) -> re.Pattern:
    """`form` at a syllable's end: not followed by a letter, and not after `q` (quý, quỳ, quỹ)."""
    return re.compile("(?<!q)" + re.escape(form) + r"(?![^\W\d_])")


def vocab_tones(vocab_file: Path) -> tuple[list[list[str]], str, str]:
    """The table rows, the conclusion line and a note on upper-case entries."""
    entries = []
    for line in vocab_file.read_text("utf-8").splitlines():
        token, _, count = line.rpartition(" ")
        if not token:  # a line without a count column
            token, count = line, ""
        entries.append((token, int(count) if count.isdigit() else 0))
    lowered = [(token.replace("@@", "").lower(), count) for token, count in entries]

    def tally(form: str) -> tuple[int, int]:
        pattern = final_form(form)
        hits = [count for token, count in lowered if pattern.search(token)]
        return len(hits), sum(hits)

    rows, totals = [], {p: [0, 0, 0, 0] for p in PATTERNS}
    for new, old in tone_pairs():
        (new_n, new_c), (old_n, old_c) = tally(new), tally(old)
        pattern = _pattern_of(new)
        for i, value in enumerate((new_n, old_n, new_c, old_c)):
            totals[pattern][i] += value
        rows.append([new, old, *_tone_cells(new_n, old_n, new_c, old_c)])
    grand = [sum(t[i] for t in totals.values()) for i in range(4)]
    for pattern in PATTERNS:
        rows.append([f"all {pattern}", "", *_tone_cells(*totals[pattern])])
    rows.append(["all", "", *_tone_cells(*grand)])

    new_n, old_n, new_c, old_c = grand
    entry_share = old_n / max(new_n + old_n, 1)
    count_share = old_c / max(new_c + old_c, 1)
    against = [p for p in PATTERNS if totals[p][1] <= totals[p][0]]
    if entry_share > 0.5 and count_share > 0.5:
        verdict = "old-style: text.normalize's old-style rewrite MATCHES it"
    elif entry_share < 0.5 and count_share < 0.5:
        verdict = "new-style: text.normalize's old-style rewrite does NOT match it"
    else:
        verdict = "no clear style (entries and counts disagree): the rewrite neither clearly matches nor not"
    conclusion = (
        f"conclusion: PhoBERT's vocabulary writes syllable-final oa/oe/uy {verdict} "
        f"({old_n} of {new_n + old_n} entries, {100 * entry_share:.1f} %, and "
        f"{100 * count_share:.1f} % of their corpus counts are old-style"
        + (f"; but not for {', '.join(against)}" if against else "")
        + ")."
    )

    def caps(form: str) -> int:
        pattern = re.compile("(?<!Q)" + re.escape(form.upper()) + r"(?![^\W\d_])")
        return sum(1 for token, _ in entries if token.isupper() and pattern.search(token.replace("@@", "")))

    caps_new = sum(caps(new) for new, _ in tone_pairs())
    caps_old = sum(caps(old) for _, old in tone_pairs())
    note = (
        f"case-sensitive, all-capitals entries only: {caps_new} new-style, {caps_old} old-style "
        "(normalize rewrites capitals too)."
    )
    return rows, conclusion, note


def _pattern_of(new: str) -> str:
    """The pattern (oa, oe, uy) of a new-style form such as `óa`: its letters without the tone."""
    import unicodedata

    base = unicodedata.normalize("NFD", new)
    return "".join(ch for ch in base if not unicodedata.combining(ch))


def _tone_cells(new_n: int, old_n: int, new_c: int, old_c: int) -> list[str]:
    return [
        str(new_n),
        str(old_n),
        f"{new_c:,}",
        f"{old_c:,}",
        f"{100 * old_n / (new_n + old_n):.1f}" if new_n + old_n else "-",
        f"{100 * old_c / (new_c + old_c):.1f}" if new_c + old_c else "-",
    ]


# --- main ----------------------------------------------------------------------------------


def _names(allowed: Sequence[str] | None):
    def parse(value: str) -> list[str]:
        names = [v.strip() for v in value.split(",") if v.strip()]
        bad = [n for n in names if allowed is not None and n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed or [])}; got {value!r}")
        return names

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--splits",
        type=_names(None),
        default=["test", "dev"],
        help="corpus splits, comma-separated (corpus/NAME.jsonl); default test,dev",
    )
    parser.add_argument(
        "--eval", action="append", type=Path, default=[], help="another JSONL file (repeatable)"
    )
    parser.add_argument("--limit", type=int, default=None, help="first N texts of each file")
    parser.add_argument(
        "--segmenters",
        type=_names(SEGMENTERS),
        default=list(SEGMENTERS),
        help=f"comma-separated, from {','.join(SEGMENTERS)}",
    )
    args = parser.parse_args(argv)
    files = [REPO / "corpus" / f"{name}.jsonl" for name in args.splits] + list(args.eval)
    for path in files:
        if not path.is_file():
            parser.error(f"no such file: {path}")

    from vitopic.tokenizer import PHOBERT_TOKENIZER_DIR

    vocab_file = PHOBERT_TOKENIZER_DIR / "vocab.txt"
    print(
        "Measuring how vitopic.text.prepare fits PhoBERT's real vocabulary "
        f"({vocab_file.relative_to(REPO) if vocab_file.is_relative_to(REPO) else vocab_file}): "
        "pieces per word, single-token words, <unk> rate, inputs over "
        f"{MAX_TOKENS} tokens, word F1 against {REFERENCE} and preparation speed, per segmenter "
        f"({', '.join(args.segmenters)}) with old-style tone marks and as written; then how the "
        "vocabulary itself writes tone marks.",
        flush=True,
    )
    check_tone_switch()
    inputs = []
    for path in files:
        texts, _ = load_texts(path)
        inputs.append((path, texts[: args.limit] if args.limit is not None else texts, len(texts)))
    progress("loading PhoBERT's tokenizer and starting the segmenters")
    fit = Fit()
    warm_up = [text for _, texts, _ in inputs for text in texts][:WARM_UP] or ["Hà Nội."]
    status = start_segmenters(args.segmenters, warm_up)

    for path, texts, available in inputs:
        progress(f"{path.name}: {len(texts)} texts")
        rows, same = measure_file(texts, args.segmenters, status, fit)
        changed, touched, total = rewritten_words(texts)
        print(f"\n## {path.name}: {len(texts)} of {available} texts\n")
        print(table(HEADERS, rows))
        for name in args.segmenters:
            if status[name] is not None:
                print(f"\n{name} unavailable: {status[name]}")
        print(
            f"\nthe old-style rewrite changes {changed} of {total} words "
            f"({100 * changed / max(total, 1):.2f} %), in {touched} of {len(texts)} texts."
        )
        if changed and same:
            print(
                f"the same prepared text with and without it: {', '.join(same)} "
                "(the segmenter's own output has old-style tone marks)."
            )

    rows, conclusion, note = vocab_tones(vocab_file)
    print(f"\n## Tone marks in PhoBERT's vocabulary ({vocab_file.name}, @@ stripped, lower-cased)\n")
    print(
        table(
            [
                "new style",
                "old style",
                "entries new",
                "entries old",
                "count new",
                "count old",
                "old % of entries",
                "old % of counts",
            ],
            rows,
        )
    )
    print(f"\n{note}\n{conclusion}")


if __name__ == "__main__":
    main()
