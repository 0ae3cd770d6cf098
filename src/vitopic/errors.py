"""The base of every error vitopic raises on purpose, so the CLI can report them in one line."""

import importlib
from types import ModuleType


class VitopicError(Exception):
    """A problem with the user's input, config, data or checkpoint, explained in the message."""


def one_line(err: BaseException) -> str:
    """An exception as one line: vitopic's own message as it is, any other with its type first."""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    return message if isinstance(err, VitopicError) else f"{type(err).__name__}: {message}"


def clip(text: str, limit: int = 80) -> str:
    """`text` for an error message, cut to `limit` characters: a message never echoes a huge
    value whole."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)`, clipped (see `clip`)."""
    return clip(repr(value), limit)


class MissingExtraError(VitopicError, ImportError):
    """An optional package that what was asked needs is not installed; the message names the extra."""


def import_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """`import module`, or a MissingExtraError saying that `purpose` needs `vitopic[extra]`."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{purpose} needs {module}: pip install 'vitopic[{extra}]'") from err
