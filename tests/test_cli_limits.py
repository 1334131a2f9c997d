"""The daily listings at any size: `log`, `runs list`, `findings`, `corrections`.

The table shows one page (the first N, default ``PAGE``) and a closing line saying how many more
match and how to see them; `--json` streams every match (or the first `--limit N`). And
`govledger --help` lists the commands without importing the library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from ledger.cli import COMMAND_HELP, COMMAND_MODULES, main
from ledger.cli.context import PAGE
from ledger.store.sqlite import Draft, Ledger
from projections.driver import catch_up
from projections.findings.queries import finding_counts, iter_findings
from projections.runs.queries import count_runs, list_runs
from tests.conftest import LedgerKeys, agent_registration, digest


def cli(db: str, *args: str) -> Result:
    result = CliRunner(env={"COLUMNS": "300"}).invoke(
        main, ["--db", db, *args], catch_exceptions=False
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def submitted(n: int, agent: str = "planner-1") -> list[Draft]:
    return [Draft("run.submitted", {"objective": "o", "user": "u", "risk": "low",
                                    "auto_approve": False}, agent=agent, run=f"run-{i:03}")
            for i in range(n)]  # fmt: skip


@pytest.fixture
def many(ledger: Ledger, keys: LedgerKeys) -> str:
    """PAGE + 5 submitted runs of planner-1, and PAGE + 5 forbidden payments in run-000."""
    ledger.append(agent_registration("planner-1"), signer=keys.root)
    ledger.append_many(submitted(PAGE + 5), signer=keys.recorder)
    payments = [Draft("tool.called", {"tool": "t.pay", "args_digest": digest(str(i)),
                                      "side_effect": "payment"}, agent="planner-1", run="run-000")
                for i in range(PAGE + 5)]  # fmt: skip
    ledger.append_many(payments, signer=keys.recorder)
    return ledger.path


def test_runs_list_table_shows_the_first_page_and_says_how_many_more(many: str) -> None:
    out = cli(many, "runs", "list").stdout
    assert "run-000" in out and f"run-{PAGE - 1:03}" in out and f"run-{PAGE:03}" not in out
    assert out.endswith(
        f"5 more run(s) not shown (first {PAGE} by start, oldest first); raise --limit, or use "
        "--json to see them all\n"
    )


def test_runs_list_limit_sets_the_page_and_json_streams_every_run(many: str) -> None:
    out = cli(many, "runs", "list", "--limit", "2").stdout
    assert "run-001" in out and "run-002" not in out
    assert out.endswith(f"{PAGE + 3} more run(s) not shown (first 2 by start, oldest first); "
                        "raise --limit, or use --json to see them all\n")  # fmt: skip
    every = lines(cli(many, "runs", "list", "--json"))
    assert [r["run"] for r in every] == [f"run-{i:03}" for i in range(PAGE + 5)]
    assert [r["run"] for r in lines(cli(many, "runs", "list", "--json", "--limit", "3"))] == [
        "run-000", "run-001", "run-002"]  # fmt: skip


def test_a_listing_that_fits_its_page_has_no_closing_line(many: str) -> None:
    out = cli(many, "runs", "list", "--limit", str(PAGE + 5)).stdout
    assert "not shown" not in out and f"run-{PAGE + 4:03}" in out
    assert "not shown" not in cli(many, "runs", "list", "--status", "running").stdout


def test_log_table_shows_the_first_page_and_json_every_event(many: str, ledger: Ledger) -> None:
    out = cli(many, "log").stdout.splitlines()
    assert len(out) == 1 + PAGE + 1
    assert out[-1] == (
        f"{ledger.size - PAGE} more event(s) not shown (first {PAGE} by seq); raise --limit, or "
        "use --json to see them all"
    )
    assert cli(many, "log", "--type", "run.submitted", "--limit", "3").stdout.splitlines()[-1] == (
        f"{PAGE + 2} more event(s) not shown (first 3 by seq); raise --limit, or use --json to "
        "see them all"
    )
    assert len(cli(many, "log", "--json").stdout.splitlines()) == ledger.size
    assert "not shown" not in cli(many, "log", "--from", "3", "--to", "4").stdout


def test_findings_table_shows_the_first_page_and_counts_every_finding(many: str) -> None:
    total = len(lines(cli(many, "findings", "--json")))
    assert total > PAGE + 5
    out = cli(many, "findings").stdout
    assert f"{total} finding(s) by kind and severity" in out
    assert out.endswith(
        f"{total - PAGE} more finding(s) not shown (first {PAGE} by seq); raise --limit, or use "
        "--json to see them all\n"
    )


def test_library_counts_agree_with_what_is_listed(many: str, ledger: Ledger) -> None:
    catch_up(ledger, ledger.read_models())
    for filters in ({}, {"status": "submitted"}, {"status": "running"}, {"agent": "nobody"},
                    {"non_compliant": True}):  # fmt: skip
        assert count_runs(ledger.read_models(), **filters) == len(
            list_runs(ledger.read_models(), **filters)
        )
    for ffilters in ({}, {"severity": "critical"}, {"run": "run-001"}):
        listed = list(iter_findings(ledger.read_models(), **ffilters))
        counts = finding_counts(ledger.read_models(), **ffilters)
        assert sum(counts.values()) == len(listed)
        assert len(list(iter_findings(ledger.read_models(), **ffilters, limit=2))) == min(
            2, len(listed)
        )


def test_corrections_limit_shows_a_page_and_says_how_many_more(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    drafts = [Draft("correction.recorded", {"text": f"cite the sources please {i}", "by": "alice",
                                            "topic": "cite"}, agent=agent)
              for agent in ("a1", "a2", "a3") for i in range(3)]  # fmt: skip
    ledger.append_many(drafts, signer=keys.recorder)
    out = cli(ledger.path, "corrections", "--limit", "1").stdout
    assert "a1" in out and "a2" not in out
    assert out.endswith(
        "2 more pattern(s) not shown (first 1 by agent then emergence); raise --limit, or use "
        "--json to see them all\n"
    )
    assert [p["agent"] for p in lines(cli(ledger.path, "corrections", "--json"))] == [
        "a1", "a2", "a3"]  # fmt: skip
    assert "not shown" not in cli(ledger.path, "corrections").stdout


def test_help_does_not_import_the_library() -> None:
    code = (
        "import sys\n"
        "from ledger.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('pydantic', 'sqlite_utils', 'cryptography', 'rich', 'projections')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", list(COMMAND_MODULES))
def test_help_lists_each_command_with_its_own_short_help(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert COMMAND_HELP[name] == command.get_short_help_str(limit=1000)
