"""``govledger tiers`` and ``govledger policy`` on real ledgers: JSON shapes, exit codes, and
recording through ``tiers apply`` (SPEC §5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.app.governance import apply_due
from ledger.cli import main
from ledger.store.sqlite import Draft, Ledger
from projections.testing import Events, replay
from projections.tiers.queries import agents, history, tier_json
from tests.conftest import LedgerKeys, agent_registration, approval, digest, run_drafts

POLICY = """
human_approval_from_tier = 2
cooldown_seconds = 0

[promotion.T1]
min_compliant_runs = 2
min_streak = 2

[promotion.T2]
min_compliant_runs = 3

[promotion.T3]
min_compliant_runs = 10
"""


def do_run(ledger: Ledger, keys: LedgerKeys, agent: str, run: str) -> None:
    drafts = run_drafts(agent, run)
    ledger.append_many(drafts[:2], signer=keys.recorder)
    ledger.append(approval(agent, run), signer=keys.root)
    ledger.append(
        Draft(
            "capability.granted",
            {"tools": ["tool.0", "tool.1"], "capabilities": [], "token_digest": digest(run)},
            agent=agent,
            run=run,
        ),
        signer=keys.root,
    )
    ledger.append_many(drafts[2:], signer=keys.recorder)


@pytest.fixture
def cli(ledger: Ledger, tmp_path: Path) -> Any:
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(
            main,
            ["--db", ledger.path, "--keys", str(tmp_path / "keys"), *args],
            catch_exceptions=code != 0,
        )
        assert result.exit_code == code, result.output + result.stderr
        return result

    return invoke


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


def lines(result: Any) -> list[Any]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_show_compute_apply_history_end_to_end(
    cli: Any, ledger: Ledger, keys: LedgerKeys, policy_file: Path
) -> None:
    ledger.append(agent_registration("a1"), signer=keys.root)  # initial tier 1
    assert json.loads(cli("policy", "set", str(policy_file), "--signer", "root",
                          "--json").stdout)["version"] == 1  # fmt: skip
    for r in range(3):
        do_run(ledger, keys, "a1", f"r{r}")
    (tier,) = lines(cli("tiers", "show", "--json"))
    assert {k: tier[k] for k in ("agent", "tier", "effective_tier", "since_seq")} == {
        "agent": "a1",
        "tier": 1,
        "effective_tier": 1,
        "since_seq": 3,
    }
    (due,) = lines(cli("tiers", "compute", "--json"))
    assert {k: due[k] for k in ("agent", "change", "from", "to", "policy_version")} == {
        "agent": "a1",
        "change": "promoted",
        "from": 1,
        "to": 2,
        "policy_version": 1,
    }
    assert due["needs_approval"] is True
    assert due["evidence"]["compliant_runs"] == 3
    assert due["evidence"]["seq_to"] == ledger.size
    # Into a human-decision tier: listed, recorded only with --approve.
    out = json.loads(cli("tiers", "apply", "--signer", "root", "--json").stdout)
    assert out["recorded"] == [] and [d["agent"] for d in out["awaiting_approval"]] == ["a1"]
    out = json.loads(cli("tiers", "apply", "--signer", "root", "--approve", "a1",
                         "--json").stdout)  # fmt: skip
    (event,) = out["recorded"]
    assert event["type"] == "tier.promoted" and event["payload"]["evidence"]["human_approval"]
    assert event["payload"]["evidence"] == {**due["evidence"], "human_approval": True}
    assert "no tier change recorded" in cli("tiers", "apply", "--signer", "root").stdout
    hist = lines(cli("tiers", "history", "a1", "--json"))
    assert [(h["change"], h["to"], h["signer"], h["justified"]) for h in hist] == [
        ("registered", 1, "root", True),
        ("promoted", 2, "root", True),
    ]
    explain = json.loads(cli("tiers", "explain", "a1", "--json").stdout)
    assert explain["tier"] == 2 and explain["next_tier"] == 3
    assert {c["criterion"]: c["met"] for c in explain["criteria"]}["min_compliant_runs"] is False


def test_apply_refuses_a_recorder_key(cli: Any, ledger: Ledger, keys: LedgerKeys) -> None:
    ledger.append(agent_registration("a1"), signer=keys.root)
    for r in range(12):
        do_run(ledger, keys, "a1", f"r{r}")
    size = ledger.size
    result = cli("tiers", "apply", "--signer", "recorder", code=2)
    assert result.stderr == (
        "error: key recorder is a recorder key; tier changes are signed by governor keys\n"
    )
    assert ledger.size == size


def test_compute_with_another_policy_records_nothing(
    cli: Any, ledger: Ledger, keys: LedgerKeys, policy_file: Path
) -> None:
    ledger.append(agent_registration("a1"), signer=keys.root)
    for r in range(3):
        do_run(ledger, keys, "a1", f"r{r}")
    size = ledger.size
    assert lines(cli("tiers", "compute", "--json")) == []  # default: T2 needs 10 runs
    (due,) = lines(cli("tiers", "compute", "--policy", str(policy_file), "--json"))
    assert (due["to"], due["policy_version"]) == (2, 1)
    assert ledger.size == size


def test_policy_show_at_seq_gives_the_policy_in_force_then(
    cli: Any, ledger: Ledger, policy_file: Path
) -> None:
    first = json.loads(cli("policy", "show", "--json").stdout)
    assert (first["version"], first["seq"]) == (0, None)
    cli("policy", "set", str(policy_file), "--signer", "root")
    now = json.loads(cli("policy", "show", "--json").stdout)
    assert (now["version"], now["seq"]) == (1, 3)
    assert now["document"]["cooldown_seconds"] == 0
    assert json.loads(cli("policy", "show", "--at-seq", "2", "--json").stdout)["version"] == 0
    cli("policy", "set", str(policy_file), "--signer", "root")
    assert json.loads(cli("policy", "show", "--json").stdout)["version"] == 2


def test_policy_set_refuses_an_invalid_file(cli: Any, ledger: Ledger, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("cooldown_secs = 5\n[promotion.T1]\nmin_streak = 1\n")
    size = ledger.size
    result = cli("policy", "set", str(bad), "--signer", "root", code=2)
    assert result.stderr == f"error: {bad}: cooldown_secs: unknown field\n"
    assert ledger.size == size


def test_history_of_an_unknown_agent_is_exit_2(cli: Any) -> None:
    result = cli("tiers", "history", "nobody", code=2)
    assert result.stderr == (
        "error: agent 'nobody' is not registered (no agent.registered or tier.* event names it)\n"
    )


def test_show_as_of_equals_the_tiers_of_the_truncated_ledger(
    cli: Any, ledger: Ledger, keys: LedgerKeys, policy_file: Path, tmp_path: Path
) -> None:
    ledger.append(agent_registration("a1"), signer=keys.root)
    cli("policy", "set", str(policy_file), "--signer", "root")
    for r in range(4):
        do_run(ledger, keys, "a1", f"r{r}")
        apply_due(ledger, keys.root, approve={"a1"})
    events = list(ledger.iter_events())
    for e in events:
        shown = lines(cli("tiers", "show", "--as-of", e.ts, "--json"))
        truncated = Events()
        truncated.events = events[: ledger.seq_at_time(e.ts)]
        db = replay(truncated)
        assert shown == [tier_json(a) for a in agents(db)]
    promoted = [h for h in history(replay(truncated)) if h.change == "promoted"]
    assert [h.to_tier for h in promoted] == [2]
