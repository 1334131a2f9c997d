"""Semantics found by review: partial rebuilds keep every finding, a critical finding blocks
promotion, a rejection overrules an earlier approval, escalation approvals mid-run are legal,
and a run ends at its first terminal event."""

from __future__ import annotations

import sqlite3
import tempfile

from ledger.store.sqlite_read_models import SqliteReadModels
from projections.driver import catch_up
from projections.replay_check import check
from projections.runs.queries import agent_metrics, findings, get_run
from projections.testing import DIGEST, Events, contract
from projections.tiers.queries import compute_due
from tests.tiers_helpers import fold, register, run


def _run_head(ev: Events, agent: str, name: str) -> dict[str, str]:
    a = {"agent": agent, "run": name}
    ev.add("run.submitted", objective="o", user="u", risk="low", auto_approve=True, **a)
    ev.add("run.approved", approver="x", mode="auto", plan_digest=DIGEST, **a)
    return a


def test_dropping_a_dependent_table_rebuilds_every_dependency_and_keeps_signals() -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract(tier=1))
    a = _run_head(ev, "a1", "r1")
    ev.add("capability.granted", tools=["t"], capabilities=[], token_digest=DIGEST, **a)
    ev.add("run.started", **a)
    for _ in range(3):
        ev.add("tool.called", tool="t", args_digest=DIGEST, side_effect="read", **a)
    ev.add("run.completed", steps_completed=1, **a)
    db = SqliteReadModels(sqlite3.connect(tempfile.mktemp(suffix=".db"), isolation_level=None))
    catch_up(ev, db)
    before = [(f.seq, f.kind) for f in findings(db)]
    assert "tool_loop" in {k for _, k in before}
    db.drop("tier_runs")
    catch_up(ev, db)
    assert [(f.seq, f.kind) for f in findings(db)] == before
    assert check(ev, db) == []


def test_no_promotion_while_a_critical_finding_holds_the_effective_tier_at_zero() -> None:
    ev = Events()
    register(ev, "a1", tier=0)
    for i in range(3):
        run(ev, "a1", f"r{i}")
    a = _run_head(ev, "a1", "bad")
    ev.add("run.started", **a)
    ev.add("tool.called", tool="t", args_digest=DIGEST, side_effect="payment", **a)
    assert [d for d in compute_due(fold(ev)) if d.agent == "a1"] == []


def test_a_rejection_after_an_approval_means_the_start_was_not_approved() -> None:
    ev = Events()
    register(ev, "a1", tier=2)
    a = _run_head(ev, "a1", "r1")
    ev.add("run.rejected", approver="h", mode="human", plan_digest=DIGEST, reason="no", **a)
    ev.add("run.started", **a)
    view = get_run(fold(ev), "r1")
    assert view is not None
    assert [(f.kind, f.evidence_seq) for f in view.findings] == [("started_without_approval", 4)]


def test_a_human_approval_of_an_escalation_mid_run_is_no_anomaly() -> None:
    ev = Events()
    register(ev, "a1", tier=2)
    a = _run_head(ev, "a1", "r2")
    ev.add("run.started", **a)
    ev.add("decision.recorded", decision="ESCALATE", confidence_bp=10, rationale="r", **a)
    ev.add("run.approved", approver="h", mode="human", plan_digest=DIGEST, **a)
    ev.add("decision.recorded", decision="EXECUTE", confidence_bp=10, rationale="r", **a)
    ev.add("run.completed", steps_completed=1, **a)
    view = get_run(fold(ev), "r2")
    assert view is not None
    out = view.as_json()
    assert (out["state"], out["compliant"], out["findings"], out["anomalies"]) == (
        "completed",
        True,
        [],
        [],
    )


def test_a_run_ends_at_its_first_terminal_event_for_streaks_too() -> None:
    ev = Events()
    register(ev, "a1", tier=2)
    run(ev, "a1", "ra")
    run(ev, "a1", "rb", ok=False)
    ev.add("run.completed", steps_completed=1, agent="a1", run="ra")  # illegal repeat
    (m,) = agent_metrics(fold(ev), "a1")
    assert m.current_streak == 0
