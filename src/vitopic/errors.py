"""The base of every error vitopic raises on purpose, so the CLI can report them in one line."""


class VitopicError(Exception):
    """A problem with the user's input, config, data or checkpoint, explained in the message."""
