"""docs/api.md runs as written: its shell setup through the CLI, then its Python blocks in
order, against a ledger in a temporary directory; the log they leave is then audited."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import main

DOC = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", DOC, flags=re.M | re.S)


def govledger(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_the_api_example_runs_and_its_log_audits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOVLEDGER_KEYS", str(tmp_path / "keys"))
    [setup] = blocks("sh")
    for line in setup.splitlines():
        words = shlex.split(line)
        assert words[0] == "govledger"
        govledger(*words[1:])
    python = blocks("python")
    assert python, "docs/api.md has no python block"
    for code in python:
        exec(compile(code, "docs/api.md", "exec"), {"__name__": "docs_api"})
    runs = [json.loads(line) for line in govledger("runs", "list", "--json").splitlines()]
    assert sorted(r["state"] for r in runs) == ["completed", "completed", "failed"]
    [failed] = [r for r in runs if r["state"] == "failed"]
    assert failed["failure_class"] == "llm_timeout"
    kinds = [json.loads(line)["kind"] for line in govledger("findings", "--json").splitlines()]
    assert kinds == ["guardrail_triggered"]
    [pattern] = [json.loads(line) for line in govledger("corrections", "--json").splitlines()]
    assert pattern["count"] == 3
    assert json.loads(govledger("verify", "--json"))["ok"] is True
