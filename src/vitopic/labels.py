"""The labels vitopic knows: for each, its name, the keyword rule of the baseline and what it means
(the model card's label table). Any other label name works too: it has no keyword rule (the
baseline never fires it) and the card points to the data card for its meaning."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Label:
    name: str
    description: str  # what the label means, for the model card
    keywords: re.Pattern[str] | None = None  # the keyword baseline: fires when this matches

    def fires(self, text: str) -> bool:
        """Whether the keyword rule fires on `text` (never, for a label without one)."""
        return self.keywords is not None and self.keywords.search(text) is not None


def label_names_problem(labels: object) -> str | None:
    """What is wrong with a list of label names (a config's `data.labels`, a checkpoint's
    `vitopic.json`), or None: at least one, each a non-empty name without surrounding spaces, no
    two alike."""
    if not isinstance(labels, list) or not labels:
        return f"must name at least one label, got {labels!r}"
    if not all(isinstance(lab, str) and lab.strip() and lab == lab.strip() for lab in labels):
        return f"must be non-empty names without surrounding spaces, got {labels!r}"
    if len(set(labels)) != len(labels):
        return f"must be unique, got {labels}"
    return None


def _rule(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


KNOWN = {
    label.name: label
    for label in (
        Label(
            "ukraine_aid",
            "the war in Ukraine and support for Ukraine: aid, weapons, sanctions and diplomacy tied "
            "to the war, the fighting itself",
            _rule(r"ukraine|kiev|kyiv|zelensky"),
        ),
        Label(
            "gaza",
            "the Israel–Hamas war and Gaza: fighting, casualties, humanitarian aid, hostages, "
            "ceasefire talks, ICJ/ICC cases, reconstruction",
            _rule(r"gaza|hamas|rafah"),
        ),
        Label(
            "nato",
            "NATO or its Secretary General as actor or subject: summits, enlargement, spending "
            "targets, Article 5, exercises, Ukraine's membership",
            _rule(r"\bnato\b"),
        ),
    )
}
DEFAULT_LABELS = tuple(KNOWN)  # the shipped corpus's labels, the config's default
UNKNOWN_DESCRIPTION = "see the training data card"


def label(name: str) -> Label:
    """The registry's entry for `name`, or a label with no rule and the generic description."""
    return KNOWN.get(name) or Label(name, UNKNOWN_DESCRIPTION)
