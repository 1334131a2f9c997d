"""Each tier rule: promotion exactly when every criterion is met, one tier at a time,
demotion, revocation, cooldown, human-decision tiers, and policies in force from their seq on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from projections.runs.queries import agent_metrics
from projections.testing import DIGEST, START, Events
from projections.tiers.queries import agents, compute_due, history, tier_findings
from tests.tiers_helpers import (
    EASY,
    assessment,
    due_of,
    fold,
    policy_doc,
    record,
    register,
    run,
    set_policy,
)

T1 = {
    "min_compliant_runs": 3,
    "min_streak": 2,
    "max_violation_rate_bp": 3000,
    "window_runs": 10,
    "min_seconds_at_tier": 0,
}


def test_promotion_is_due_exactly_when_the_last_criterion_is_met() -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1=T1), 1)
    register(ev)
    run(ev, "a1", "r1")
    run(ev, "a1", "r2", warning=True)
    run(ev, "a1", "r3")
    last = run(ev, "a1", "r4")  # compliant 3, streak 2, 1 of 4 bad = 2500 bp
    for seq in range(1, len(ev.events) + 1):
        due = due_of(ev, to_seq=seq)
        assert (due is not None) == (seq >= last), seq
    due = due_of(ev)
    assert due is not None and (due.change, due.from_tier, due.to_tier) == ("promoted", 0, 1)
    assert due.evidence == {
        "compliant_runs": 3,
        "streak": 2,
        "violation_rate_bp": 2500,
        "window_runs": 4,
        "window_violations": 1,
        "seconds_at_tier": 17,
        "seq_from": 2,
        "seq_to": last,
    }
    assert (due.policy_version, len(due.policy_digest)) == (1, 64)


@pytest.mark.parametrize(
    ("criterion", "value", "runs_ok"),
    [("min_compliant_runs", 5, 4), ("min_streak", 5, 4), ("max_violation_rate_bp", 1000, 4)],
    ids=["compliant_runs", "streak", "violation_rate"],
)
def test_one_unmet_criterion_blocks_promotion(criterion: str, value: int, runs_ok: int) -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1={**EASY, criterion: value}), 1)
    register(ev)
    run(ev, "a1", "bad", warning=True)
    for i in range(runs_ok):
        run(ev, "a1", f"r{i}")
    a = assessment(ev)
    assert a.due is None
    assert [c.name for c in a.criteria if not c.met] == [criterion]


def test_min_seconds_at_tier_counts_log_time_not_wall_clock() -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1={**EASY, "min_seconds_at_tier": 3600}), 1)
    register(ev)
    run(ev, "a1", "r1")
    assert due_of(ev) is None
    run(ev, "a1", "r2", at=START + timedelta(hours=1))
    assert due_of(ev) is not None


def test_promotion_moves_one_tier_at_a_time() -> None:
    ev = Events()
    set_policy(ev, policy_doc(human_approval_from_tier=5, T1=EASY, T2=EASY, T3=EASY, T4=EASY), 1)
    register(ev)
    for i in range(30):
        run(ev, "a1", f"r{i}")
    for tier in range(4):
        due = due_of(ev)
        assert due is not None and (due.from_tier, due.to_tier) == (tier, tier + 1)
        record(ev, due)
    assert due_of(ev) is None
    db = fold(ev)
    assert agents(db)[0].tier == 4
    assert tier_findings(db) == []


def test_a_recorded_skip_of_a_tier_is_unjustified() -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1=EASY, T2=EASY), 1)
    register(ev)
    run(ev, "a1", "r1")
    due = due_of(ev)
    assert due is not None
    seq = record(ev, due, to=2)
    (f,) = tier_findings(fold(ev))
    assert (f.seq, f.kind, f.severity, f.agent) == (
        seq,
        "unjustified_tier_change",
        "critical",
        "a1",
    )
    assert "T0 → T2 is not one tier up" in f.detail


def test_a_promotion_recorded_one_event_early_is_unjustified() -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1=T1), 1)
    register(ev)
    for i in range(3):
        run(ev, "a1", f"r{i}")
    due = due_of(ev)
    assert due is not None
    early = Events()
    early.events = ev.events[:-1]  # before the third run completed
    seq = record(early, due)
    (f,) = tier_findings(fold(early))
    assert f.seq == seq
    assert "min_compliant_runs: required >= 3, actual 2" in f.detail


def test_demotion_may_skip_tiers_and_counts_runs_at_the_current_tier_only() -> None:
    ev = Events()
    set_policy(ev, policy_doc(demotion={"window_runs": 5, "max_violations": 1, "by": 2}), 1)
    register(ev, tier=3)
    run(ev, "a1", "r1", warning=True)
    assert due_of(ev) is None  # 1 violation: not more than max_violations
    run(ev, "a1", "r2", warning=True)
    due = due_of(ev)
    assert due is not None and (due.change, due.from_tier, due.to_tier) == ("demoted", 3, 1)
    assert due.evidence["window_violations"] == 2
    record(ev, due)
    assert due_of(ev) is None  # the violations happened at T3, not at T1
    assert tier_findings(fold(ev)) == []


def test_critical_finding_zeroes_effective_tier_at_once_and_revocation_is_due() -> None:
    ev = Events()
    register(ev, tier=2)
    run(ev, "a1", "r1")
    bad = run(ev, "a1", "r2", critical=True)
    (a,) = agents(fold(ev, to_seq=bad - 1))  # the tool call outside any grant
    assert (a.tier, a.effective_tier) == (2, 0)
    due = due_of(ev)
    assert due is not None and (due.change, due.from_tier, due.to_tier) == ("revoked", 2, 0)
    assert due.evidence["critical_seq"] == bad - 1
    record(ev, due)
    (a,) = agents(fold(ev))
    assert (a.tier, a.effective_tier) == (0, 0)
    assert due_of(ev) is None


def test_cooldown_after_a_demotion_blocks_promotion_until_it_passes() -> None:
    ev = Events()
    set_policy(ev, policy_doc(cooldown_seconds=3600, T1=EASY, T2=EASY), 1)
    register(ev, tier=1)
    run(ev, "a1", "r1", critical=True)
    due = due_of(ev)
    assert due is not None and due.change == "revoked"
    record(ev, due)
    run(ev, "a1", "r2")
    a = assessment(ev)
    assert a.due is None and [c.name for c in a.criteria if not c.met] == ["cooldown_seconds"]
    run(ev, "a1", "r3", at=START + timedelta(hours=2))
    due = due_of(ev)
    assert due is not None and (due.change, due.to_tier) == ("promoted", 1)
    assert due.evidence["seconds_since_demotion"] >= 3600


def test_promotion_ignoring_the_cooldown_is_unjustified() -> None:
    ev = Events()
    set_policy(ev, policy_doc(cooldown_seconds=3600, T1=EASY), 1)
    register(ev, tier=1)
    run(ev, "a1", "r1", critical=True)
    revoke = due_of(ev)
    assert revoke is not None
    record(ev, revoke)
    run(ev, "a1", "r2")
    later = Events()
    later.events = list(ev.events)
    run(later, "a1", "r3", at=START + timedelta(hours=2))
    due = due_of(later)
    assert due is not None
    seq = record(ev, due)  # the same promotion, recorded before the cooldown passed
    (f,) = tier_findings(fold(ev))
    assert f.seq == seq and "cooldown_seconds: required >= 3600" in f.detail


def test_human_decision_tiers_need_an_explicit_approval() -> None:
    ev = Events()
    set_policy(ev, policy_doc(human_approval_from_tier=2, T1=EASY, T2=EASY), 1)
    register(ev, tier=1)
    run(ev, "a1", "r1")
    due = due_of(ev)
    assert due is not None and due.needs_approval and due.to_tier == 2
    seq = record(ev, due, approved=False)
    (f,) = tier_findings(fold(ev))
    assert f.seq == seq and "needs an explicit human decision" in f.detail


def test_a_promotion_is_judged_by_the_policy_in_force_at_its_seq() -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1=EASY), 1)
    register(ev)
    run(ev, "a1", "r1")
    due = due_of(ev)
    assert due is not None
    record(ev, due)
    strict = policy_doc(T1=EASY, T2={**EASY, "min_compliant_runs": 50})
    set_policy(ev, strict, 2)
    db = fold(ev)
    assert tier_findings(db) == []  # the T1 promotion stays justified by version 1
    assert [h.policy_version for h in history(db, "a1")] == [None, 1]
    # A promotion into T2 citing version 1 after version 2 is in force is unjustified.
    seq = record(ev, due, **{"from": 1, "to": 2})
    (f,) = tier_findings(fold(ev))
    assert f.seq == seq
    assert "cites policy version 1, but version 2 was in force" in f.detail
    assert "min_compliant_runs: required >= 50, actual 1" in f.detail


def test_a_change_from_the_wrong_tier_is_unjustified() -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1=EASY, T2=EASY), 1)
    register(ev, tier=1)
    run(ev, "a1", "r1")
    due = due_of(ev)
    assert due is not None
    record(ev, due, **{"from": 0})
    (f,) = tier_findings(fold(ev))
    assert "from T0, but the agent held T1 since seq 2" in f.detail


def test_a_change_signed_by_a_non_governor_key_is_unjustified() -> None:
    ev = Events()
    ev.add(
        "key.registered", key_id="0" * 32, name="rec", public_key="A" * 43 + "=", role="recorder"
    )
    set_policy(ev, policy_doc(T1=EASY), 1)
    register(ev)
    run(ev, "a1", "r1")
    due = due_of(ev)
    assert due is not None
    record(ev, due)
    (f,) = tier_findings(fold(ev))
    assert "signed by a recorder key, not a governor" in f.detail


def test_an_unjustified_demotion_is_reported() -> None:
    ev = Events()
    register(ev, tier=2)
    run(ev, "a1", "r1")
    ev.add(
        "tier.demoted",
        agent="a1",
        **{"from": 2, "to": 1},
        reason="dislike",
        policy_version=0,
        policy_digest=due_digest(ev),
        evidence={"seq_from": 1, "seq_to": 1},
    )
    (f,) = tier_findings(fold(ev))
    assert "the demotion rule does not hold: 0 of the last 1 runs at T2" in f.detail


def due_digest(ev: Events) -> str:
    from projections.policy.document import default_policy

    return default_policy().digest


def test_incremental_folds_agree_with_one_pass() -> None:
    ev = Events()
    set_policy(ev, policy_doc(T1=EASY, T2=EASY), 1)
    register(ev)
    for i in range(6):
        run(ev, "a1", f"r{i}", ok=i % 3 != 0, critical=i == 4)
        due = due_of(ev)
        if due is not None:
            record(ev, due)
    one = fold(ev)
    step = fold(ev, to_seq=5)
    for seq in range(6, len(ev.events) + 1, 3):
        fold(ev, step, to_seq=seq)
    fold(ev, step)
    for table in ("tiers", "tier_runs", "tier_history", "tier_findings", "tier_policies"):
        assert list(one.execute(f"SELECT * FROM {table}")) == list(
            step.execute(f"SELECT * FROM {table}")
        ), table


def test_a_failed_run_breaks_the_streak_but_is_no_violation() -> None:
    ev = Events()
    set_policy(ev, policy_doc(demotion={"window_runs": 5, "max_violations": 0, "by": 1}), 1)
    register(ev, tier=2)
    run(ev, "a1", "r1", ok=False)  # failed, no finding: not compliant, not a violation
    a = assessment(ev)
    assert a.due is None and a.demotion_violations == 0 and a.streak == 0
    run(ev, "a1", "r2", warning=True)
    due = due_of(ev)
    assert due is not None and (due.change, due.evidence["window_violations"]) == ("demoted", 1)


def _run_head(ev: Events, agent: str, name: str) -> dict[str, str]:
    a = {"agent": agent, "run": name}
    ev.add("run.submitted", objective="o", user="u", risk="low", auto_approve=True, **a)
    ev.add("run.approved", approver="x", mode="auto", plan_digest=DIGEST, **a)
    return a


def test_no_promotion_while_a_critical_finding_holds_the_effective_tier_at_zero() -> None:
    ev = Events()
    register(ev, "a1", tier=0)
    for i in range(3):
        run(ev, "a1", f"r{i}")
    a = _run_head(ev, "a1", "bad")
    ev.add("run.started", **a)
    ev.add("tool.called", tool="t", args_digest=DIGEST, side_effect="payment", **a)
    assert [d for d in compute_due(fold(ev)) if d.agent == "a1"] == []


def test_a_run_ends_at_its_first_terminal_event_for_streaks_too() -> None:
    ev = Events()
    register(ev, "a1", tier=2)
    run(ev, "a1", "ra")
    run(ev, "a1", "rb", ok=False)
    ev.add("run.completed", steps_completed=1, agent="a1", run="ra")  # illegal repeat
    (m,) = agent_metrics(fold(ev), "a1")
    assert m.current_streak == 0
