from collections import Counter

from helpers import DATA, LABELS
from transformers import AutoTokenizer, PhobertTokenizer

from vitopic.bpe import learn_phobert_tokenizer
from vitopic.data import read_jsonl
from vitopic.text import prepare


def test_learned_tokenizer_round_trips_through_phobert_tokenizer(tmp_path):
    examples = read_jsonl(DATA / "train.jsonl", LABELS)[:400]
    texts = prepare([ex.text for ex in examples], "pyvi")
    learn_phobert_tokenizer(texts, tmp_path, merges=800)

    codes = (tmp_path / "bpe.codes").read_text("utf-8")
    assert codes.endswith("\n") and len(codes.splitlines()) > 100
    for line in (tmp_path / "vocab.txt").read_text("utf-8").splitlines():
        token, count = line.rsplit(" ", 1)
        assert token and count.isdigit()

    tokenizer = PhobertTokenizer(str(tmp_path / "vocab.txt"), str(tmp_path / "bpe.codes"))
    assert [
        tokenizer.bos_token_id,
        tokenizer.pad_token_id,
        tokenizer.eos_token_id,
        tokenizer.unk_token_id,
    ] == [0, 1, 2, 3]
    for text in texts[:100]:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # Frequent words become single pieces; an unseen word still splits into known pieces.
    frequent = Counter(w for t in texts for w in t.split() if "_" in w).most_common(1)[0][0]
    assert tokenizer.tokenize(frequent) == [frequent]
    unseen = tokenizer.tokenize("Zxqviện")
    assert len(unseen) > 1 and all(t in tokenizer.get_vocab() for t in unseen)

    tokenizer.save_pretrained(tmp_path / "saved")
    (tmp_path / "saved" / "config.json").write_text(
        '{"model_type": "roberta", "tokenizer_class": "PhobertTokenizer"}'
    )
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert type(reloaded).__name__ == "PhobertTokenizer"
    assert reloaded(texts[0])["input_ids"] == tokenizer(texts[0])["input_ids"]
