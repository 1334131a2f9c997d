"""Each governance check of SPEC §3: the offending run finds exactly that finding, and
the compliant version of the same run finds none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from projections.policy.document import default_policy
from projections.runs.queries import findings, get_run
from projections.testing import DIGEST, START, Events, contract, replay
from tests.tiers_helpers import EASY, due_of, fold, policy_doc, record, register, set_policy


@dataclass
class Seqs:
    """Seqs of the interesting events of a built run."""

    registered: int | None = None
    submitted: int = 0
    approved: int | None = None
    escalated: int | None = None
    granted: int | None = None
    started: int = 0
    decision: int = 0
    tool: int = 0
    completed: int = 0


def build_run(
    ev: Events,
    *,
    agent: str = "a1",
    run: str = "r1",
    register: bool = True,
    registration: dict[str, Any] | None = None,
    approve: bool = True,
    approval_mode: str = "human",
    approval_expires: str | None = None,
    escalate: bool = False,
    grant_tools: list[str] | None = None,
    grant: bool = True,
    grant_expires: str | None = None,
    tool: str = "memory.read",
    side_effect: str = "read",
    confidence_bp: int = 9000,
    required_tier: int = 1,
) -> Seqs:
    """A run with every governance step in place unless told otherwise."""
    s = Seqs()
    ar = {"agent": agent, "run": run}
    if register:
        s.registered = ev.add("agent.registered", agent=agent, **(registration or contract())).seq
    s.submitted = ev.add("run.submitted", **ar, objective="o", user="u", risk="low",
                         auto_approve=False).seq  # fmt: skip
    step = {"tool": tool, "args_digest": DIGEST, "side_effect": side_effect, "reversible": True}
    ev.add("run.planned", **ar, steps=[step], risk="low", required_tier=required_tier)
    if escalate:
        s.escalated = ev.add("decision.recorded", **ar, decision="ESCALATE", confidence_bp=4000,
                             rationale="unsure").seq  # fmt: skip
    if approve:
        extra = {"expires_at": approval_expires} if approval_expires else {}
        s.approved = ev.add("run.approved", **ar, approver="boss", mode=approval_mode,
                            plan_digest=DIGEST, **extra).seq  # fmt: skip
    if grant:
        extra = {"expires_at": grant_expires} if grant_expires else {}
        s.granted = ev.add("capability.granted", **ar, tools=grant_tools or [tool],
                           capabilities=["c"], token_digest=DIGEST, **extra).seq  # fmt: skip
    s.started = ev.add("run.started", **ar).seq
    s.decision = ev.add("decision.recorded", **ar, decision="EXECUTE",
                        confidence_bp=confidence_bp, rationale="go").seq  # fmt: skip
    s.tool = ev.add("tool.called", **ar, tool=tool, args_digest=DIGEST,
                    side_effect=side_effect).seq  # fmt: skip
    ev.add("tool.completed", **ar, tool=tool, status="ok", duration_ms=12)
    ev.add("llm.usage", **ar, provider="p", model="m", tokens_in=10, tokens_out=5,
           cache_read_tokens=0, cache_write_tokens=0, cost_micro_usd=300, wallclock_ms=40)  # fmt: skip
    s.completed = ev.add("run.completed", **ar, steps_completed=1).seq
    return s


def found(ev: Events, run: str = "r1") -> set[tuple[str, str, int, int | None]]:
    db = replay(ev)
    return {(f.kind, f.severity, f.seq, f.evidence_seq) for f in findings(db, run=run)}


def in_seconds(n: int) -> str:
    return (START + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_compliant_run_has_no_findings_and_is_compliant() -> None:
    ev = Events()
    build_run(ev)
    db = replay(ev)
    view = get_run(db, "r1")
    assert view is not None
    assert view.findings == []
    assert view.as_json()["compliant"] is True
    assert view.row["state"] == "completed"
    assert view.row["anomalies"] == 0


def test_started_without_approval() -> None:
    ev = Events()
    s = build_run(ev, approve=False)
    assert found(ev) == {("started_without_approval", "critical", s.started, s.submitted)}


def test_started_after_the_approval_expired() -> None:
    ev = Events()
    s = build_run(ev, approval_expires=in_seconds(4))
    assert found(ev) == {("started_without_approval", "critical", s.started, s.approved)}


def test_started_before_the_approval_expires_is_compliant() -> None:
    ev = Events()
    build_run(ev, approval_expires=in_seconds(3600))
    assert found(ev) == set()


def test_tool_called_in_a_run_never_approved_nor_started() -> None:
    ev = Events()
    ar = {"agent": "a1", "run": "r1"}
    # At T1 a low-risk run submitted with auto_approve still needs a governor's approval.
    reg = ev.add("agent.registered", agent="a1", **contract(tier=1)).seq
    sub = ev.add("run.submitted", **ar, objective="o", user="u", risk="low", auto_approve=True)
    ev.add("capability.granted", **ar, tools=["t"], capabilities=[], token_digest=DIGEST)
    t1 = ev.add("tool.called", **ar, tool="t", args_digest=DIGEST, side_effect="read").seq
    ev.add("tool.called", **ar, tool="t", args_digest=DIGEST, side_effect="read")
    assert reg == 1
    assert found(ev) == {("started_without_approval", "critical", t1, sub.seq)}


def test_tool_outside_grant() -> None:
    ev = Events()
    s = build_run(ev, grant_tools=["memory.write"])
    assert found(ev) == {("tool_outside_grant", "critical", s.tool, s.granted)}


def test_tool_without_any_grant_has_no_evidence_seq() -> None:
    ev = Events()
    s = build_run(ev, grant=False, registration=contract(tier=1))  # below contract_suffices
    assert found(ev) == {("tool_outside_grant", "critical", s.tool, None)}


def test_tool_after_the_grant_expired() -> None:
    ev = Events()
    s = build_run(ev, grant_expires=in_seconds(6))
    assert found(ev) == {("grant_expired", "warning", s.tool, s.granted)}


def test_tool_before_the_grant_expires_is_compliant() -> None:
    ev = Events()
    build_run(ev, grant_expires=in_seconds(3600))
    assert found(ev) == set()


def test_a_later_live_grant_covers_the_tool() -> None:
    ev = Events()
    ar = {"agent": "a1", "run": "r1"}
    ev.add("agent.registered", agent="a1", **contract())
    ev.add("run.submitted", **ar, objective="o", user="u", risk="low", auto_approve=False)
    ev.add("run.approved", **ar, approver="b", mode="human", plan_digest=DIGEST)
    ev.add("capability.granted", **ar, tools=["t"], capabilities=[], token_digest=DIGEST,
           expires_at=in_seconds(4))  # fmt: skip
    ev.add("capability.granted", **ar, tools=["t"], capabilities=[], token_digest=DIGEST)
    ev.add("run.started", **ar)
    ev.add("tool.called", **ar, tool="t", args_digest=DIGEST, side_effect="read")
    assert found(ev) == set()


def test_side_effect_not_allowed() -> None:
    ev = Events()
    s = build_run(ev, side_effect="network")
    assert found(ev) == {("side_effect_not_allowed", "warning", s.tool, s.registered)}


@pytest.mark.parametrize(
    ("tool", "side_effect"),
    [("wallet.pay", "payment"), ("shell.rm", "delete")],
    ids=["side-effect-forbidden", "tool-name-forbidden"],
)
def test_forbidden_action_wins_over_allowed(tool: str, side_effect: str) -> None:
    ev = Events()
    reg = contract(allowed=("read", "payment", "delete"), forbidden=("payment", "shell.rm"))
    s = build_run(ev, registration=reg, tool=tool, side_effect=side_effect)
    assert found(ev) == {("forbidden_action", "critical", s.tool, s.registered)}


def test_low_confidence_execute() -> None:
    ev = Events()
    s = build_run(ev, confidence_bp=5000)
    assert found(ev) == {("low_confidence_execute", "warning", s.decision, s.registered)}


def test_low_confidence_execute_after_escalation_and_human_approval_is_compliant() -> None:
    ev = Events()
    build_run(ev, confidence_bp=5000, escalate=True)
    assert found(ev) == set()


def test_escalation_approved_automatically_does_not_clear_low_confidence() -> None:
    ev = Events()
    s = build_run(ev, confidence_bp=5000, escalate=True, approval_mode="auto")
    assert found(ev) == {("low_confidence_execute", "warning", s.decision, s.registered)}


def test_tier_too_low() -> None:
    ev = Events()
    s = build_run(ev, required_tier=3)
    assert found(ev) == {("tier_too_low", "warning", s.submitted + 1, s.registered)}


def test_tier_too_low_uses_effective_tier_after_a_critical_finding() -> None:
    ev = Events()
    first = build_run(ev, run="r1", approve=False)
    s = build_run(ev, run="r2", register=False, required_tier=1)
    assert found(ev, "r2") == {("tier_too_low", "warning", s.submitted + 1, first.started)}


def _promote_justly(ev: Events, agent: str = "a1") -> int:
    """Record the promotion the policy makes due (one tier up, criteria met) for ``agent``."""
    due = due_of(ev, agent)
    assert due is not None and due.change == "promoted"
    return record(ev, due)


EASY_PROMOTIONS = policy_doc(human_approval_from_tier=5, cooldown_seconds=0, T2=EASY, T3=EASY)


def test_tier_promotion_raises_the_tier_for_later_plans() -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract(tier=1))
    set_policy(ev, EASY_PROMOTIONS, 1)
    _promote_justly(ev)
    build_run(ev, register=False, required_tier=2)
    assert found(ev) == set()


def test_an_unjustified_promotion_does_not_raise_the_tier_for_later_plans() -> None:
    ev = Events()
    reg = ev.add("agent.registered", agent="a1", **contract(tier=1)).seq
    # T1 → T3 skips a tier: recorded, flagged by the tiers read model, and ignored by the runs
    # read model's rules (the agent still holds T1 from its registration).
    ev.add("tier.promoted", agent="a1", from_=1, to=3, reason="r", policy_version=0,
           policy_digest=default_policy().digest, evidence={"seq_from": 1, "seq_to": 1})  # fmt: skip
    s = build_run(ev, register=False, required_tier=2)
    planned = s.submitted + 1
    assert found(ev) == {("tier_too_low", "warning", planned, reg)}


def test_unregistered_agent_one_finding_per_run_and_contract_checks_skipped() -> None:
    ev = Events()
    s = build_run(ev, register=False, side_effect="payment", confidence_bp=1, required_tier=4)
    assert found(ev) == {("unregistered_agent", "warning", s.submitted, None)}


def test_unregistered_agent_without_a_run() -> None:
    ev = Events()
    e = ev.add("feedback.quality", agent="ghost", score_bp=100, by="u")
    ev.add("feedback.quality", agent="ghost", score_bp=100, by="u")
    db = replay(ev)
    assert [(f.kind, f.seq, f.run) for f in findings(db, agent="ghost")] == [
        ("unregistered_agent", e.seq, None)
    ]


def test_registering_again_keeps_the_tier_and_changes_the_contract() -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract(tier=1))
    set_policy(ev, EASY_PROMOTIONS, 1)
    _promote_justly(ev)
    _promote_justly(ev)  # T3
    reg2 = ev.add("agent.registered", agent="a1",
                  **contract(tier=0, allowed=("read",), version="2")).seq  # fmt: skip
    s = build_run(ev, register=False, required_tier=3, side_effect="write")
    assert found(ev) == {("side_effect_not_allowed", "warning", s.tool, reg2)}


def test_finding_details_name_expected_and_found() -> None:
    ev = Events()
    build_run(ev, confidence_bp=5000, grant_tools=["x"])
    db = replay(ev)
    details = {f.kind: f.detail for f in findings(db)}
    assert details == {
        "tool_outside_grant": "tool 'memory.read' is in no capability.granted of run 'r1'",
        "low_confidence_execute": "EXECUTE at confidence 5000 bp, below the threshold 7000 bp, "
        "without an escalation approved by a human",
    }


def _run_head(ev: Events, agent: str, name: str) -> dict[str, str]:
    a = {"agent": agent, "run": name}
    ev.add("run.submitted", objective="o", user="u", risk="low", auto_approve=True, **a)
    ev.add("run.approved", approver="x", mode="auto", plan_digest=DIGEST, **a)
    return a


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
