"""``govledger demo``: a sample ledger that verifies, tells its story (promotions, a demotion, a
revocation) and whose tour suggests only commands that work; also from the installed command."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.app.governance import read_models
from ledger.cli import main
from ledger.store.sqlite import Ledger
from ledger.verify.verifier import verify_ledger
from projections.tiers.queries import history


@dataclass(frozen=True)
class Demo:
    db: Path
    keys: Path
    state: Path
    stdout: str
    stderr: str

    def invoke(self, *args: str, code: int = 0) -> str:
        """Run a govledger command on the demo ledger in this process; its stdout."""
        runner = CliRunner()
        result = runner.invoke(
            main, ["--db", str(self.db), "--keys", str(self.keys), *args],
            env={"GOVLEDGER_STATE": str(self.state)}, catch_exceptions=code != 0,
        )  # fmt: skip
        assert result.exit_code == code, (args, result.output, result.stderr)
        return result.stdout


def run_demo(tmp: Path, *args: str) -> Demo:
    db, keys, state = tmp / "demo.db", tmp / "keys", tmp / "state"
    result = CliRunner().invoke(
        main, ["--db", str(db), "--keys", str(keys), "demo", *args],
        env={"GOVLEDGER_STATE": str(state)}, catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    return Demo(db, keys, state, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """The demo with its defaults (6000 events, 6 agents, seed 7), built once and only read."""
    return run_demo(tmp_path_factory.mktemp("demo"))


def tier_events(db: Path) -> list[tuple[str, dict[str, Any]]]:
    with Ledger.open(db) as ledger:
        return [(e.type, e.payload) for e in ledger.iter_events() if e.type.startswith("tier.")]


def test_demo_ledger_verifies(demo: Demo) -> None:
    with Ledger.open(demo.db) as ledger:
        report = verify_ledger(ledger)
    assert report.ok, report.problems[:3]
    assert report.events > 6000


def test_demo_records_promotions_a_demotion_and_a_revocation(demo: Demo) -> None:
    events = tier_events(demo.db)
    kinds = Counter(t for t, _ in events)
    assert kinds["tier.promoted"] >= 3 and kinds["tier.demoted"] >= 1
    assert kinds["tier.revoked"] >= 1
    promoted_to = [p["to"] for t, p in events if t == "tier.promoted"]
    assert max(promoted_to) >= 3  # T2 reached, then a human-decision tier
    approved = [p for t, p in events if p["evidence"].get("human_approval") is True]
    assert approved or "awaiting a human decision" in demo.stdout


def test_demo_tour_tells_the_story(demo: Demo) -> None:
    out = demo.stdout
    assert re.search(r"\d+ promotions?, \d+ demotions?, \d+ revocations?", out)
    assert "planner-1 is careful" in out and "coder-1 is reckless" in out
    assert re.search(r"correction patterns emerged: [1-9]", out)
    assert "What to look at next:" in out
    assert "building a sample ledger at" in demo.stderr


def test_demo_tier_changes_are_justified_on_replay(demo: Demo) -> None:
    out = demo.invoke("replay", "--check")
    assert out.startswith("ok: read models match a fresh replay")
    with Ledger.open(demo.db) as ledger, read_models(ledger) as rm:
        changes = [h for h in history(rm) if h.change != "registered"]
    assert len(changes) == len(tier_events(demo.db))
    assert [h for h in changes if not h.justified] == []


def test_demo_runs_mix_governor_approvals_approvals_by_tier_and_violations(demo: Demo) -> None:
    with Ledger.open(demo.db) as ledger, read_models(ledger) as rm:
        by = dict(rm.execute(
            "SELECT CASE WHEN approvals > 0 THEN 'governor' WHEN tier_approved THEN 'tier' "
            "ELSE 'none' END, count(*) FROM runs WHERE started_seq IS NOT NULL GROUP BY 1"
        ).fetchall())  # fmt: skip
        kinds = {k for (k,) in rm.execute("SELECT DISTINCT kind FROM findings")}
    assert by["governor"] > by["tier"] > by.get("none", 0) > 0
    assert {"started_without_approval", "tool_outside_grant", "guardrail_triggered"} <= kinds


def test_demo_refuses_an_existing_ledger_and_writes_nothing(tmp_path: Path) -> None:
    first = run_demo(tmp_path, "--events", "2000", "--agents", "3")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = CliRunner().invoke(
        main, ["--db", str(first.db), "--keys", str(first.keys), "demo"],
        env={"GOVLEDGER_STATE": str(first.state)},
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {first.db} already holds a ledger")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_demo_refuses_too_few_events_or_agents(tmp_path: Path) -> None:
    for args in (["--events", "1999"], ["--agents", "2"]):
        result = CliRunner().invoke(main, ["--db", str(tmp_path / "d.db"), "demo", *args])
        assert result.exit_code == 2
        assert "Invalid value for" in result.stderr
    assert not (tmp_path / "d.db").exists()


def test_every_command_of_the_tour_works(tmp_path: Path) -> None:
    demo = run_demo(tmp_path, "--events", "2000")
    lines = demo.stdout.split("What to look at next:\n", 1)[1].splitlines()
    commands = [line.split("   # ", 1)[0].strip() for line in lines if line.strip()]
    assert len(commands) >= 12
    for command in commands:
        # "$(govledger … keys vkey root)": the one shell substitution of the tour.
        for inner in re.findall(r'"\$\((govledger [^)]*)\)"', command):
            vkey = demo.invoke(*_args(demo, inner)).strip()
            command = command.replace(f'"$({inner})"', vkey)
        args = _args(demo, command)
        out = demo.invoke(*args)
        assert out.strip() or args[0] == "prove", command


def _args(demo: Demo, command: str) -> list[str]:
    """The arguments of a suggested ``govledger`` command after ``--db``/``--keys``, which
    the tour repeats since they were given on the command line (``Demo.invoke`` adds them)."""
    argv = shlex.split(command)
    assert argv[0] == "govledger", command
    if argv[1] != "--db":
        return argv[1:]
    assert argv[1:5] == ["--db", str(demo.db), "--keys", str(demo.keys)], command
    return argv[5:]


def test_installed_demo_runs_from_an_empty_directory(tmp_path: Path) -> None:
    # As a user would: the console script, from a directory with no repository in sight.
    exe = Path(sys.executable).parent / "govledger"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GOVLEDGER_DB")}
    env |= {"GOVLEDGER_KEYS": str(tmp_path / "keys"), "GOVLEDGER_STATE": str(tmp_path / "state")}
    work = tmp_path / "empty"
    work.mkdir()
    proc = subprocess.run([str(exe), "demo", "--events", "2000"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "What to look at next:" in proc.stdout
    # The program that ran, as it can be run again (its path when PATH has another or none);
    # no --db/--keys: defaults and env.
    on_path = shutil.which("govledger", path=env.get("PATH"))
    program = "govledger" if on_path and os.path.samefile(on_path, exe) else str(exe)
    assert f"  {program} verify --trust " in proc.stdout
    assert sorted(p.name for p in work.iterdir()) == ["govledger.checkpoint", "govledger.db"]
    check = subprocess.run([str(exe), "replay", "--check"], cwd=work, env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert check.returncode == 0, check.stderr
