"""The label registry: known labels bring a keyword rule and a card description; any other name
works without them."""

import yaml
from helpers import DATA, LABELS

from vitopic.baseline import keyword_metrics
from vitopic.checkpoint import Metadata
from vitopic.config import load_config
from vitopic.data import Example, read_jsonl
from vitopic.labels import DEFAULT_LABELS, KNOWN, UNKNOWN_DESCRIPTION
from vitopic.modelcard import render_card


def test_the_default_labels_are_the_known_ones():
    assert list(DEFAULT_LABELS) == list(KNOWN) == LABELS
    assert load_config(None, check_files=False).data.labels == LABELS


def test_each_known_rule_fires_mostly_on_its_own_label():
    rows = read_jsonl(DATA / "dev.jsonl", LABELS)
    scores = keyword_metrics(rows, LABELS).per_label
    for name in KNOWN:
        assert scores[name].precision > 0.8 and scores[name].recall > 0.3, (name, scores[name])


def test_a_label_of_your_own_has_no_rule_and_a_generic_description():
    rows = [
        Example("1", "Israel không kích Rafah ở Dải Gaza.", ("gaza",), 1),
        Example("2", "Đội tuyển bóng đá thắng 2-0.", ("sport",), 2),
    ]
    scores = keyword_metrics(rows, ["gaza", "sport"]).per_label
    assert scores["gaza"].f1 == 1.0
    assert scores["sport"].recall == 0.0  # no rule: it never fires
    meta = Metadata(["gaza", "sport"], "multi_label", "pyvi", 256, [0.5, 0.5])
    card = render_card(meta, {}, "m")
    # the registry's descriptions are for the shipped corpus (tests/test_modelcard.py)
    assert f"| `gaza` | {UNKNOWN_DESCRIPTION} |" in card
    assert f"| `sport` | {UNKNOWN_DESCRIPTION} |" in card
    assert yaml.safe_load(card.split("---")[1])["language"] == ["vi"]
