"""The label-mode heads: classes, training targets and back, probabilities, scores, decisions."""

import numpy as np
import pytest
from helpers import LABELS

from vitopic.config import ModelConfig
from vitopic.heads import MultiLabelHead, SingleLabelHead, head_for
from vitopic.options import MODES, NONE_CLASS

ROWS = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=np.float32)  # multi_hot's shape and dtype


def test_each_mode_has_its_head_and_nothing_else_does():
    assert [head_for(mode).mode for mode in MODES] == list(MODES)
    assert isinstance(head_for("multi_label"), MultiLabelHead)
    assert isinstance(ModelConfig(mode="single_label").head, SingleLabelHead)
    with pytest.raises(ValueError, match="mode must be one of"):
        head_for("softmax")


def test_multi_label_head():
    head = MultiLabelHead()
    assert head.problem_type == "multi_label_classification"
    assert head.class_names(LABELS) == LABELS
    assert head.reserved([*LABELS, NONE_CLASS]) is None
    assert head.uses_thresholds and head.takes_pos_weight
    assert head.default_thresholds(3) == [0.5, 0.5, 0.5]
    targets = head.targets(ROWS)
    assert targets == [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    np.testing.assert_array_equal(head.references(np.array(targets), 3), ROWS.astype(bool))
    scores = head.probabilities(np.array([[0.0, 2.0, -2.0]]))
    np.testing.assert_allclose(scores, [[0.5, 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))]])
    np.testing.assert_array_equal(head.label_scores(scores), scores)
    decided = head.decide(scores, np.array([0.5, 0.9, 0.1]))
    np.testing.assert_array_equal(decided, [[True, False, True]])


def test_single_label_head():
    head = SingleLabelHead()
    assert head.problem_type == "single_label_classification"
    assert head.class_names(LABELS) == [NONE_CLASS, *LABELS]
    assert head.reserved([*LABELS, NONE_CLASS]) == NONE_CLASS and head.reserved(LABELS) is None
    assert not head.uses_thresholds and not head.takes_pos_weight
    assert head.default_thresholds(3) == []
    targets = head.targets(ROWS)
    assert targets == [1, 2, 0]  # the first label's class; `none` (0) for a row without labels
    refs = head.references(np.array(targets), 3)
    np.testing.assert_array_equal(refs, [[True, False, False], [False, True, False], [False] * 3])
    scores = head.probabilities(np.array([[0.0, 3.0, 1.0, 0.0], [5.0, 0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(scores.sum(1), [1.0, 1.0])
    np.testing.assert_array_equal(head.label_scores(scores), scores[:, 1:])
    unused = np.full(3, 0.99)  # thresholds do not matter: the most probable class wins
    np.testing.assert_array_equal(head.decide(scores, unused), [[True, False, False], [False] * 3])


@pytest.mark.parametrize("mode", MODES)
def test_head_config_describes_the_head_to_transformers(mode):
    from vitopic.modeling import head_config

    head = head_for(mode)
    fields = head_config(LABELS, head)
    assert fields["problem_type"] == head.problem_type
    assert fields["num_labels"] == len(head.class_names(LABELS))
    assert list(fields["id2label"].values()) == head.class_names(LABELS)
