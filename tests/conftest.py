"""Shared fixtures: one tiny model trained on the shipped corpus, reused by the tests that need it
(plain helpers and constants live in helpers.py)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
from pathlib import Path

import pytest
from helpers import TINY, tiny_overrides
from hypothesis import settings

# CI replays a fixed set of examples (a landing must not depend on luck); local runs explore.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory) -> Path:
    """config -> train -> save, once per session, through the same workflow as `vitopic train`."""
    from vitopic.config import load_config
    from vitopic.workflows import train_and_report

    out = tmp_path_factory.mktemp("run") / "tiny"
    train_and_report(load_config(TINY, tiny_overrides(out)))
    return out


@pytest.fixture
def model_copy(trained_dir, tmp_path) -> Path:
    """A private copy of the trained checkpoint, for tests that alter files."""
    target = tmp_path / "model"
    shutil.copytree(trained_dir, target, ignore=shutil.ignore_patterns("checkpoints"))
    return target


@pytest.fixture(scope="session")
def classifier(trained_dir):
    from vitopic import TopicClassifier

    return TopicClassifier.from_pretrained(trained_dir)
