"""PhoBERT's own tokenizer (VinAI's `vocab.txt` + `bpe.codes`, MIT), shipped with vitopic.

Every `vinai/phobert-*` model tokenizes with these two files, so a model built or pretrained here
with them gives its token ids the meaning they have in PhoBERT.
"""

from __future__ import annotations

from pathlib import Path

from transformers import PhobertTokenizer

PHOBERT_TOKENIZER_DIR = Path(__file__).parent / "phobert_tokenizer"


def phobert_tokenizer(
    directory: str | Path = PHOBERT_TOKENIZER_DIR, max_length: int = 256
) -> PhobertTokenizer:
    """The tokenizer in `directory` (PhoBERT's shipped files by default), limited to `max_length`.

    Hub PhoBERT repos ship no tokenizer_config.json (so `model_max_length` would be 1e30).
    """
    directory = Path(directory)
    return PhobertTokenizer(
        vocab_file=str(directory / "vocab.txt"),
        merges_file=str(directory / "bpe.codes"),
        model_max_length=max_length,
    )
