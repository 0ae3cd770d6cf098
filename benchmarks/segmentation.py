"""Word-segmentation backends: throughput, agreement with RDRSegmenter, and their share of predict time.

    python benchmarks/segmentation.py

Throughput times `vitopic.text.prepare(texts, backend)` over all texts after the backend has
started (JVM start, model loading and a first call are reported separately as start-up).
Agreement is F1 over word spans, a word being one whitespace token of the output (syllables
joined by `_`); spans are character offsets into the text with all spaces and `_` removed, so
differing punctuation splits do not shift the alignment.
"""

from __future__ import annotations

import warnings

from common import (
    base_checkpoint,
    load_texts,
    machine_info,
    set_threads,
    table,
    timed,
)

BACKENDS = ("rdrsegmenter", "underthesea", "pyvi", "none")
REFERENCE = "rdrsegmenter"
TARGET_TEXTS = 256
DEFAULTS = (("rdrsegmenter", "configs/phobert*.yaml"), ("pyvi", "configs/tiny.yaml"))


def word_spans(segmented: str) -> set[tuple[int, int]]:
    """Character spans of the words of one segmented text, in its space- and `_`-free form."""
    spans, pos = set(), 0
    for word in segmented.split():
        size = len(word.replace("_", ""))
        if size:
            spans.add((pos, pos + size))
            pos += size
    return spans


def span_f1(outputs: list[str], reference: list[str]) -> float:
    """Micro F1 of word spans over all texts."""
    hits = pred = gold = 0
    for out, ref in zip(outputs, reference, strict=True):
        a, b = word_spans(out), word_spans(ref)
        hits, pred, gold = hits + len(a & b), pred + len(a), gold + len(b)
    return 2 * hits / (pred + gold) if pred + gold else 1.0


def prep_share(texts: list[str], segmenter: str) -> tuple[float, float]:
    """(seconds in `prepare`, total seconds) of fp32 TopicClassifier.predict on the base-sized model."""
    import vitopic.predict as predict_module
    from vitopic.predict import TopicClassifier

    spent = [0.0]
    original = predict_module.prepare

    def timed_prepare(items: list[str], name: str) -> list[str]:
        seconds, out = timed(lambda: original(items, name))
        spent[0] += seconds
        return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "segmenter overrides the one this model was trained with"
        clf = TopicClassifier.from_pretrained(base_checkpoint(), backend="torch", segmenter=segmenter)
    clf.predict(texts[:32], batch_size=32)  # warm-up (segmenter start-up excluded)
    predict_module.prepare = timed_prepare
    try:
        total, _ = timed(lambda: clf.predict(texts, batch_size=32))
    finally:
        predict_module.prepare = original
    return spent[0], total


def main() -> None:
    from vitopic.text import get_segmenter, prepare

    cores = set_threads()
    texts, source = load_texts()
    print(machine_info())
    print(f"inputs: {source}; torch threads {cores}")
    outputs, rows = {}, []
    for backend in BACKENDS:
        startup, _ = timed(lambda b=backend: (get_segmenter(b), prepare([texts[0]], b)))
        seconds, outputs[backend] = timed(lambda b=backend: prepare(texts, b))
        rows.append([backend, f"{startup:.2f}", f"{seconds:.2f}", f"{len(texts) / seconds:.1f}"])
    for row, backend in zip(rows, BACKENDS, strict=True):
        row.append(f"{100 * span_f1(outputs[backend], outputs[REFERENCE]):.1f}")
    print(f"\n## Segmentation backends, prepare() on {len(texts)} texts\n")
    print(table(["backend", "start-up s", "batch s", "sentences/s", f"word F1 vs {REFERENCE} %"], rows))

    sample = texts[:TARGET_TEXTS]
    share_rows, ok = [], True
    for segmenter, config in DEFAULTS:
        prep, total = prep_share(sample, segmenter)
        under = prep / total < 0.10
        ok &= under
        share_rows.append(
            [
                f"{segmenter} ({config})",
                f"{prep:.2f}",
                f"{total:.2f}",
                f"{100 * prep / total:.1f}",
                "yes" if under else "NO",
            ]
        )
    print(
        f"\n## Text preparation share of end-to-end predict (PhoBERT-base-sized, torch fp32, "
        f"batch 32, {len(sample)} texts)\n"
    )
    print(table(["default segmenter", "prep s", "total s", "prep %", "under 10 %"], share_rows))
    print(f"\ntarget: text prep < 10 % of end-to-end time: {'MET' if ok else 'NOT MET'}")


if __name__ == "__main__":
    main()
