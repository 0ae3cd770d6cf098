"""Third-party chatter that says nothing to a vitopic user, silenced where it arises."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet(*loggers: str, messages: tuple[str, ...] = ()) -> Iterator[None]:
    """Within the block: the named loggers ("" for the root logger) show errors only, and warnings
    whose message starts with one of `messages` are dropped; everything else still shows."""
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in loggers]
    try:
        for logger, _ in saved:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            for message in messages:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """Within the block: transformers shows no progress bars (such as the "Loading weights" bar
    of every model load); afterwards they are back on if they were (with huggingface_hub's,
    which transformers switches together with its own)."""
    from transformers.utils import logging as transformers_logging

    was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            transformers_logging.enable_progress_bar()
