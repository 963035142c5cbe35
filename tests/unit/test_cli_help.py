"""Every option of every command says what it does, and its default when it has one (issue #13:
webhook --host/--port, imap --interval, stream --batch-events came without either)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from availability.cli import _parser
from availability.settings import Settings

# Options whose help need not name a default, each with the reason.
NO_DEFAULT_SHOWN: dict[tuple[str, str], str] = {
    # The shared --agreements/--warehouse defaults come from the environment; the help names the
    # variable (and "the shipped agreements"), which is what a reader can act on.
    ("*", "--agreements"): "default from env AVAILABILITY_AGREEMENTS",
    ("*", "--warehouse"): "default from env AVAILABILITY_WAREHOUSE",
    ("availability dashboards provision", "--grafana-url"): "default from env AVAILABILITY_GRAFANA_URL",
}


def commands(
    parser: argparse.ArgumentParser, name: str = "availability"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from commands(child, f"{name} {sub}")


def options() -> Iterator[tuple[str, argparse.Action]]:
    # An empty environment: the defaults are the code's, not this machine's settings.
    parser = _parser(Settings(_env_file=None))  # type: ignore[call-arg]
    for name, command in commands(parser):
        for action in command._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            if action.option_strings:
                yield name, action


def flag(action: argparse.Action) -> bool:
    return isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction | argparse._StoreConstAction)


def test_the_tree_is_walked() -> None:
    # Guards the walk itself: these must be among what it finds, or every other test here is empty.
    found = {(name, a.option_strings[-1]) for name, a in options()}
    assert {
        ("availability stream", "--batch-events"),
        ("availability ingest webhook", "--host"),
        ("availability ingest imap", "--interval"),
        ("availability report", "--as-of"),
    } <= found


@pytest.mark.parametrize("name, action", list(options()), ids=lambda v: v if isinstance(v, str) else v.dest)
def test_every_option_has_a_help_text(name: str, action: argparse.Action) -> None:
    assert action.help and action.help != argparse.SUPPRESS, f"{name} {'/'.join(action.option_strings)}: no help"


@pytest.mark.parametrize("name, action", list(options()), ids=lambda v: v if isinstance(v, str) else v.dest)
def test_an_option_with_a_default_says_it(name: str, action: argparse.Action) -> None:
    option = action.option_strings[-1]
    if flag(action) or action.default in (None, argparse.SUPPRESS, [], ()):
        return
    if (name, option) in NO_DEFAULT_SHOWN or ("*", option) in NO_DEFAULT_SHOWN:
        return
    assert "default" in (action.help or ""), f"{name} {option}: its default {action.default!r} is not in its help"


def test_as_of_shows_its_format() -> None:
    (as_of,) = [a for name, a in options() if name == "availability report" and "--as-of" in a.option_strings]
    assert "RFC 3339" in (as_of.help or "") and "2026-" in (as_of.help or "")
