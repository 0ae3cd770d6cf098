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
