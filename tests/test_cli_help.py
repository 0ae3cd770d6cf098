"""The command line's surface: every command and option explains itself; errors are one plain line."""

import argparse
from collections.abc import Iterator

from helpers import run_cli

from vitopic.cli import build_parser


def actions(parser: argparse.ArgumentParser, path: str = "vitopic") -> Iterator[tuple[str, argparse.Action]]:
    """Every argument of `parser` and its subcommands (each command's own entry too), but -h."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for command in action._choices_actions:
                yield path, command
            for name, sub in action.choices.items():
                yield from actions(sub, f"{path} {name}")


def test_every_command_and_option_has_help():
    found = list(actions(build_parser()))
    assert len(found) > 80  # the walk reached the subcommands
    missing = [f"{path}: {a.option_strings or a.dest}" for path, a in found if not (a.help or "").strip()]
    assert missing == []


def test_the_overview_names_every_input_evaluate_takes():
    code, out, _ = run_cli("--help")
    assert code == 0
    assert "evaluate metrics and plots on a labeled file (JSONL, CSV or a saved dataset)" in " ".join(
        out.split()
    )


def test_an_unavailable_device_is_one_plain_line():
    code, out, err = run_cli("predict", "--model", "/never/read", "--device", "cuda:99", "NATO họp.")
    assert code == 2 and out == ""
    assert (
        err.startswith("error: device 'cuda:99' is not available: this machine has ") and err.count("\n") == 1
    )
