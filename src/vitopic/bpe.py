"""Learn a PhoBERT-format BPE tokenizer (`vocab.txt` + `bpe.codes`) from segmented text."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PhobertTokenizer

END = "</w>"


def learn_phobert_tokenizer(
    texts: list[str], out_dir: str | Path, merges: int = 4000, max_length: int = 256
) -> PhobertTokenizer:
    """Learn BPE merges from word-segmented `texts`; write them as PhoBERT's files and load them.

    PhoBERT's tokenizer applies merges greedily by rank to each whitespace token, with `</w>`
    on the last symbol; `tokenizers`' BPE trainer with the same suffix learns exactly that.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    words = Counter(word for text in texts for word in text.split())
    alphabet = sorted({ch for word in words for ch in word})
    trainer = trainers.BpeTrainer(
        vocab_size=2 * len(alphabet) + merges,
        min_frequency=2,
        show_progress=False,
        end_of_word_suffix=END,
        initial_alphabet=alphabet,
        special_tokens=[],
    )
    bpe = Tokenizer(models.BPE(end_of_word_suffix=END))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    bpe.train_from_iterator(texts, trainer=trainer)

    ranked = [tuple(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]
    piece_counts: Counter[str] = Counter()
    for word, count in words.items():
        for piece in bpe.encode(word).tokens:
            piece_counts[_vocab_form(piece)] += count
    # Every single character, word-final or not, so unseen words never become <unk>.
    for ch in alphabet:
        piece_counts.setdefault(ch, 0)
        piece_counts.setdefault(ch + "@@", 0)
    for left, right in ranked:
        piece_counts.setdefault(_vocab_form(left + right), 0)

    with open(out_dir / "bpe.codes", "w", encoding="utf-8") as f:
        # The count column is informational (PhobertTokenizer ignores it): the merged piece's frequency.
        f.writelines(f"{a} {b} {piece_counts[_vocab_form(a + b)]}\n" for a, b in ranked)
    with open(out_dir / "vocab.txt", "w", encoding="utf-8") as f:
        f.writelines(f"{piece} {count}\n" for piece, count in piece_counts.most_common())
    return PhobertTokenizer(
        vocab_file=str(out_dir / "vocab.txt"),
        merges_file=str(out_dir / "bpe.codes"),
        model_max_length=max_length,
    )


def _vocab_form(piece: str) -> str:
    """`abc</w>` (word-final) -> `abc`; `ab` (non-final) -> `ab@@`, as PhoBERT's vocab.txt writes."""
    return piece[: -len(END)] if piece.endswith(END) else piece + "@@"
