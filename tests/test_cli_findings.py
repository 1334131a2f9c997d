"""`govledger findings` and the `unjustified_tier_change` finding (SPEC §3 Findings, §5).

A governor's "trust me" promotion is a critical finding like any other: listed by `findings`,
given beside its entry by `tiers history --json`, flagged by `tiers show`, and ignored by the
agent's effective tier and compliance (the breach is the signer's, not the agent's).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.cli import main
from ledger.store.sqlite import Draft, Ledger
from projections.policy.document import default_policy
from tests.conftest import LedgerKeys, agent_registration
from tests.test_cli_runs import compliant_run, forbidden_run

FINDING_KEYS = {"kind", "severity", "seq", "evidence_seq", "agent", "run", "ts", "detail", "source"}


def cli(db: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", db, *args], catch_exceptions=False)


def lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return [json.loads(line) for line in result.stdout.splitlines()]


def register(ledger: Ledger, keys: LedgerKeys, agent: str, tier: int) -> None:
    reg = agent_registration(agent)
    ledger.append(Draft("agent.registered", {**reg.payload, "initial_tier": tier}, agent=agent),
                  signer=keys.root)  # fmt: skip


def tier_change(ledger: Ledger, keys: LedgerKeys, change: str, frm: int, to: int,
                reason: str = "trust me", agent: str = "planner-1") -> int:  # fmt: skip
    payload = {"from": frm, "to": to, "reason": reason, "policy_version": 0,
               "policy_digest": default_policy().digest,
               "evidence": {"seq_from": 1, "seq_to": ledger.size}}  # fmt: skip
    (event,) = ledger.append_many([Draft(f"tier.{change}", payload, agent=agent)],
                                  signer=keys.root)  # fmt: skip
    return event.seq


@pytest.fixture
def db(ledger: Ledger, keys: LedgerKeys) -> str:
    """planner-1 at T0 with one compliant run; coder-1 at T1 with a paying run (critical)."""
    register(ledger, keys, "planner-1", 0)
    register(ledger, keys, "coder-1", 1)
    compliant_run(ledger, keys, "run-a")
    forbidden_run(ledger, keys, "run-b", agent="coder-1")
    return ledger.path


def test_a_trust_me_promotion_is_a_critical_finding_the_effective_tier_ignores(
    db: str, ledger: Ledger, keys: LedgerKeys
) -> None:
    before = lines(cli(db, "metrics", "--agent", "planner-1", "--json"))[0]
    seq = tier_change(ledger, keys, "promoted", 0, 4)

    shown = {t["agent"]: t for t in lines(cli(db, "tiers", "show", "--json"))}
    p = shown["planner-1"]
    assert (p["tier"], p["effective_tier"], p["since_seq"]) == (4, 0, seq)
    assert (p["unjustified_seq"], p["justified_tier"]) == (seq, 0)
    assert shown["coder-1"]["unjustified_seq"] is None
    table = cli(db, "tiers", "show").stdout
    (row,) = [line for line in table.splitlines() if "planner-1" in line]
    assert "T4" in row and f"UNJUSTIFIED (seq {seq}; justified T0)" in row

    (finding,) = lines(cli(db, "findings", "--kind", "unjustified_tier_change", "--json"))
    assert {k: finding[k] for k in ("kind", "severity", "seq", "evidence_seq", "agent", "run",
                                    "source")} == {
        "kind": "unjustified_tier_change", "severity": "critical", "seq": seq,
        "evidence_seq": seq - 1, "agent": "planner-1", "run": None, "source": "tiers",
    }  # fmt: skip
    assert finding["detail"].startswith("tier.promoted T0 → T4: T0 → T4 is not one tier up")

    entries = lines(cli(db, "tiers", "history", "planner-1", "--json"))
    assert [e["finding"] for e in entries[:-1]] == [None]
    assert entries[-1]["justified"] is False
    assert entries[-1]["finding"] == {k: v for k, v in finding.items() if k != "source"}

    after = lines(cli(db, "metrics", "--agent", "planner-1", "--json"))[0]
    for key in ("compliant_runs", "current_streak", "best_streak", "violations",
                "violations_by_severity"):  # fmt: skip
        assert after[key] == before[key], key
    assert after["unjustified_tier_changes"] == 1


def test_the_agent_keeps_its_justified_tier_and_no_revocation_falls_due(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    register(ledger, keys, "planner-1", 2)
    compliant_run(ledger, keys, "run-a")
    seq = tier_change(ledger, keys, "promoted", 2, 4)
    db = ledger.path
    (t,) = lines(cli(db, "tiers", "show", "--json"))
    # The critical finding is the governor's: the effective tier is T2, not 0.
    assert (t["tier"], t["effective_tier"], t["unjustified_seq"]) == (4, 2, seq)
    assert lines(cli(db, "tiers", "compute", "--json")) == []
    explained = json.loads(cli(db, "tiers", "explain", "planner-1", "--json").stdout)
    assert explained["next_tier"] == 3
    text = cli(db, "tiers", "explain", "planner-1").stdout
    assert f"the change at seq {seq} is unjustified: the rules go by T2\n" in text


def test_a_change_back_to_the_justified_tier_undoes_the_unjustified_one(
    db: str, ledger: Ledger, keys: LedgerKeys
) -> None:
    tier_change(ledger, keys, "promoted", 0, 4)
    back = tier_change(ledger, keys, "demoted", 4, 0, reason="undo the promotion")
    (t,) = [t for t in lines(cli(db, "tiers", "show", "--json")) if t["agent"] == "planner-1"]
    assert (t["tier"], t["effective_tier"], t["since_seq"], t["unjustified_seq"]) == (0, 0, back,
                                                                                      None)  # fmt: skip
    entries = lines(cli(db, "tiers", "history", "planner-1", "--json"))
    assert [(e["change"], e["justified"]) for e in entries] == [
        ("registered", True), ("promoted", False), ("demoted", True)]  # fmt: skip


def test_tiers_history_table_says_the_finding_is_critical(
    db: str, ledger: Ledger, keys: LedgerKeys
) -> None:
    tier_change(ledger, keys, "promoted", 0, 4)
    result = cli(db, "tiers", "history", "planner-1")
    assert result.exit_code == 0
    assert "UNJUSTIFIED: T0 → T4 is not one tier up" in result.stdout
    assert result.stderr == (
        "1 unjustified_tier_change finding(s), severity critical "
        "(govledger findings --agent planner-1)\n"
    )


def test_findings_lists_every_read_model_in_seq_order_with_a_count(
    db: str, ledger: Ledger, keys: LedgerKeys
) -> None:
    seq = tier_change(ledger, keys, "promoted", 0, 4)
    found = lines(cli(db, "findings", "--json"))
    assert all(set(f) == FINDING_KEYS for f in found)
    assert [f["seq"] for f in found] == sorted(f["seq"] for f in found)
    assert [(f["kind"], f["source"]) for f in found] == [
        ("forbidden_action", "runs"), ("unjustified_tier_change", "tiers")]  # fmt: skip
    assert found[-1]["seq"] == seq
    table = cli(db, "findings")
    assert table.exit_code == 0
    assert "2 finding(s) by kind and severity" in table.stdout
    assert "more finding(s) not shown" not in table.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--severity", "critical"], ["forbidden_action", "unjustified_tier_change"]),
        (["--kind", "forbidden_action"], ["forbidden_action"]),
        (["--kind", "forbidden_action", "--kind", "unjustified_tier_change"],
         ["forbidden_action", "unjustified_tier_change"]),
        (["--agent", "planner-1"], ["unjustified_tier_change"]),
        (["--run", "run-b"], ["forbidden_action"]),
        (["--agent", "coder-1", "--severity", "critical"], ["forbidden_action"]),
        (["--until", "2000-01-01T00:00:00Z"], []),
        (["--since", "2000-01-01T00:00:00Z"], ["forbidden_action", "unjustified_tier_change"]),
    ],
    ids=["severity", "kind", "kinds", "agent", "run", "agent-and-severity", "until", "since"],
)  # fmt: skip
def test_findings_filters(
    db: str, ledger: Ledger, keys: LedgerKeys, args: list[str], expected: list[str]
) -> None:
    tier_change(ledger, keys, "promoted", 0, 4)
    assert [f["kind"] for f in lines(cli(db, "findings", *args, "--json"))] == expected


def test_findings_since_and_until_are_inclusive(db: str, ledger: Ledger, keys: LedgerKeys) -> None:
    tier_change(ledger, keys, "promoted", 0, 4)
    first, second = lines(cli(db, "findings", "--json"))
    assert [f["seq"] for f in lines(cli(db, "findings", "--since", second["ts"], "--json"))] == [
        second["seq"]
    ]
    assert [f["seq"] for f in lines(cli(db, "findings", "--until", first["ts"], "--json"))] == [
        first["seq"]
    ]


def test_a_filter_that_matches_nothing_prints_nothing_and_says_so(db: str) -> None:
    for extra in ([], ["--json"]):
        result = cli(db, "findings", "--agent", "nobody", *extra)
        assert result.exit_code == 0
        assert result.stdout == ""
        assert result.stderr == "no finding matches\n"


def test_findings_limit_shows_the_first_and_says_how_many_more(
    db: str, ledger: Ledger, keys: LedgerKeys
) -> None:
    seq = tier_change(ledger, keys, "promoted", 0, 4)
    result = cli(db, "findings", "--limit", "1")
    assert result.exit_code == 0
    assert "forbidden_action" in result.stdout
    assert f"│ {seq} " not in result.stdout
    assert "2 finding(s) by kind and severity" in result.stdout
    assert result.stdout.endswith(
        "1 more finding(s) not shown (first 1 by seq); raise --limit, or use --json to see them "
        "all\n"
    )
    assert [f["kind"] for f in lines(cli(db, "findings", "--limit", "1", "--json"))] == [
        "forbidden_action"
    ]


def test_findings_travel_in_time(db: str, ledger: Ledger, keys: LedgerKeys) -> None:
    seq = tier_change(ledger, keys, "promoted", 0, 4)
    at = str(seq - 1)
    assert [f["kind"] for f in lines(cli(db, "findings", "--at-seq", at, "--json"))] == [
        "forbidden_action"
    ]
    assert [f["kind"] for f in lines(cli(db, "findings", "--at-seq", str(seq), "--json"))] == [
        "forbidden_action", "unjustified_tier_change"]  # fmt: skip
    (t,) = [t for t in lines(cli(db, "tiers", "show", "--at-seq", at, "--json"))
            if t["agent"] == "planner-1"]  # fmt: skip
    assert (t["tier"], t["unjustified_seq"]) == (0, None)
    ts = lines(cli(db, "findings", "--json"))[0]["ts"]
    assert [f["kind"] for f in lines(cli(db, "findings", "--as-of", ts, "--json"))] == [
        "forbidden_action"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--severity", "fatal"],
         "error: --severity: unknown severity 'fatal'; valid: info, warning, critical\n"),
        (["--kind", "nope"], "error: --kind: unknown kind 'nope'; valid: cost_cap_daily, "),
    ],
    ids=["severity", "kind"],
)  # fmt: skip
def test_an_invalid_severity_or_kind_is_a_usage_error_naming_the_valid_ones(
    db: str, args: list[str], message: str
) -> None:
    result = cli(db, "findings", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    if args[0] == "--kind":
        assert "unjustified_tier_change" in result.stderr
        assert "tool_outside_grant" in result.stderr


def test_evidence_seq_is_the_event_before_when_the_cited_seq_to_is_not_earlier(
    db: str, ledger: Ledger, keys: LedgerKeys
) -> None:
    payload = {"from": 0, "to": 4, "reason": "trust me", "policy_version": 0,
               "policy_digest": default_policy().digest,
               "evidence": {"seq_from": 1, "seq_to": 10**6}}  # fmt: skip
    (event,) = ledger.append_many([Draft("tier.promoted", payload, agent="planner-1")],
                                  signer=keys.root)  # fmt: skip
    (f,) = lines(cli(db, "findings", "--agent", "planner-1", "--json"))
    assert (f["seq"], f["evidence_seq"]) == (event.seq, event.seq - 1)
