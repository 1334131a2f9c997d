"""The README teaches every command, and every command teaches itself (`--help`)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ledger.cli import COMMAND_MODULES, main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _commands() -> list[tuple[str, ...]]:
    ctx = click.Context(main)
    out: list[tuple[str, ...]] = []
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None, name
        out.append((name,))
        if isinstance(command, click.Group):
            out += [(name, sub) for sub in command.list_commands(ctx)]
    return out


def test_every_command_module_loads() -> None:
    ctx = click.Context(main)
    assert sorted(main.list_commands(ctx)) == sorted(COMMAND_MODULES)


@pytest.mark.parametrize("words", _commands(), ids=" ".join)
def test_every_command_is_in_the_readme_and_has_help(words: tuple[str, ...]) -> None:
    assert f"govledger {' '.join(words)}" in README
    result = CliRunner().invoke(main, [*words, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage: " in result.stdout and len(result.stdout.splitlines()) > 4
