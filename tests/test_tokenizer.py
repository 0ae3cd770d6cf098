"""PhoBERT's own tokenizer ships with vitopic, and every checkpoint carries it: the real ids."""

import hashlib

import pytest
from transformers import AutoTokenizer

from vitopic.tokenizer import PHOBERT_TOKENIZER_DIR, phobert_tokenizer

SHA256 = {  # ../shared/phobert-tokenizer/README.md: VinAI's files, byte for byte
    "vocab.txt": "dffd7543c401fb6567253ae7c3313004532c33d062525250049c616544bad777",
    "bpe.codes": "9dfe53fb8abbddd3387da99641c36e00bee757a3679aad9cf0a7cdc4b30f6ef8",
}
# transformers' PhoBERT integration test (with <s> and </s>), and VinAI's issue tracker (without).
SENTENCE = ("Tôi là sinh_viên trường đại_học Công_nghệ .", [0, 218, 8, 649, 212, 956, 2413, 5, 2])
WORDS = {
    "Trần_văn_thời": [1359, 3, 8915],
    "Trần_văn_Thời": [1359, 16398, 4834],
    "Lê_văn_Tám": [1475, 16398, 6813],
}


def _assert_real_ids(tokenizer) -> None:
    text, ids = SENTENCE
    assert tokenizer(text)["input_ids"] == ids
    for word, ids in WORDS.items():
        assert tokenizer(word, add_special_tokens=False)["input_ids"] == ids, word
    assert len(tokenizer) == 64001 and tokenizer.mask_token_id == 64000


@pytest.mark.parametrize("name", sorted(SHA256))
def test_the_shipped_files_are_vinais_byte_for_byte(name):
    data = (PHOBERT_TOKENIZER_DIR / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256[name]
    assert data.endswith(b"\n")  # PhobertTokenizer drops the last merge of a file without one


def test_vinais_license_ships_beside_them():
    text = (PHOBERT_TOKENIZER_DIR / "LICENSE-VinAI-PhoBERT").read_text()
    assert "MIT License" in text and "VinAI" in text


def test_the_shipped_tokenizer_gives_phoberts_ids():
    _assert_real_ids(phobert_tokenizer())


def test_a_trained_checkpoint_carries_phoberts_tokenizer(trained_dir):
    """The offline default's checkpoint: its files are PhoBERT's, and plain AutoTokenizer on it
    gives PhoBERT's ids, as does vitopic's own loader."""
    for name in SHA256:
        assert (trained_dir / name).read_bytes() == (PHOBERT_TOKENIZER_DIR / name).read_bytes()
    tokenizer = AutoTokenizer.from_pretrained(trained_dir)
    assert type(tokenizer).__name__ == "PhobertTokenizer"
    _assert_real_ids(tokenizer)
    from vitopic import TopicClassifier

    _assert_real_ids(TopicClassifier.from_pretrained(trained_dir).tokenizer)
