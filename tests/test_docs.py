"""The README teaches every command, every command teaches itself (`--help`), and
docs/architecture.md names only paths and modules that exist."""

from __future__ import annotations

import importlib
import importlib.util
import re
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


ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
PATHS = sorted(
    set(
        re.findall(
            r"(?<![\w/.])((?:ledger|projections|tests|docs|scripts)/[\w/.-]*\w)", ARCHITECTURE
        )
    )
)
DOTTED = sorted(
    set(re.findall(r"(?<![\w/.])((?:ledger|projections)(?:\.[A-Za-z_]\w*)+)", ARCHITECTURE))
)


def test_the_architecture_names_paths_and_modules() -> None:
    # The checks below prove something only if the patterns find the names.
    assert {"ledger/event/body.py", "ledger/store"} <= set(PATHS)
    assert "ledger.event" in DOTTED and "projections.register" in DOTTED


@pytest.mark.parametrize("path", PATHS)
def test_every_path_the_architecture_names_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


@pytest.mark.parametrize("name", DOTTED)
def test_every_module_the_architecture_names_exists(name: str) -> None:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        module_name = ".".join(parts[:cut])
        if importlib.util.find_spec(module_name) is not None:
            value: object = importlib.import_module(module_name)
            for attr in parts[cut:]:
                assert hasattr(value, attr), f"docs/architecture.md names {name}: no {attr}"
                value = getattr(value, attr)
            return
    raise AssertionError(f"docs/architecture.md names {name}, which is not a module")
