"""Reliability signals from replay: each is found exactly at its triggering event (not
one earlier), names the events of its streak, counts against compliance, and is linked to (not
doubled by) the runtime's own guardrail for the same thing."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.store.base import ReadModels
from ledger.store.sqlite import Draft, Ledger
from projections.findings import kinds as g
from projections.policy.document import SEVERITY_BITS, default_document, digest_of
from projections.reliability.queries import signals
from projections.runs.queries import agent_metrics, findings, get_run, list_runs
from projections.testing import DIGEST, START, Events, contract, replay
from tests.conftest import LedgerKeys

OTHER = "cd" * 32


def begin(ev: Events, run: str, agent: str = "a1", register: bool = False) -> None:
    """A registered, approved, granted and started run."""
    if register:
        ev.add("agent.registered", agent=agent, **contract())
    ar = {"agent": agent, "run": run}
    ev.add("run.submitted", **ar, objective="o", user="u", risk="low", auto_approve=False)
    ev.add("run.approved", **ar, approver="gov", mode="human", plan_digest=DIGEST)
    ev.add("capability.granted", **ar, tools=["web.search", "kb.search"], capabilities=[],
           token_digest=DIGEST)  # fmt: skip
    ev.add("run.started", **ar)


def call(ev: Events, run: str, tool: str = "web.search", digest: str = DIGEST,
         agent: str = "a1") -> int:  # fmt: skip
    seq = ev.add("tool.called", agent=agent, run=run, tool=tool, args_digest=digest,
                 side_effect="read").seq  # fmt: skip
    ev.add("tool.completed", agent=agent, run=run, tool=tool, status="ok", duration_ms=5)
    return seq


def usage(ev: Events, cost: int, run: str | None = "r1", agent: str = "a1", **kw: Any) -> int:
    return ev.add("llm.usage", agent=agent, run=run, provider="p", model="m", tokens_in=1,
                  tokens_out=1, cache_read_tokens=0, cache_write_tokens=0,
                  cost_micro_usd=cost, wallclock_ms=1, **kw).seq  # fmt: skip


def set_policy(ev: Events, version: int = 1, **reliability: int) -> int:
    doc = default_document()
    doc["reliability"] = {**doc["reliability"], **reliability}
    return ev.add("policy.set", version=version, digest=digest_of(doc), document=doc).seq


def kinds_at(db: ReadModels, kind: str) -> list[tuple[int, int | None]]:
    return [(f.seq, f.evidence_seq) for f in findings(db, kinds=[kind])]


def assert_exactly_at(ev: Events, kind: str, seq: int, evidence: int) -> ReadModels:
    """The finding is there after ``seq`` (full and incremental replay), absent at ``seq - 1``."""
    db = replay(ev)
    assert kinds_at(db, kind) == [(seq, evidence)]
    assert kinds_at(replay(ev.prefix(seq)), kind) == [(seq, evidence)]
    assert kinds_at(replay(ev.prefix(seq - 1)), kind) == []
    assert kinds_at(replay(ev, batch=2), kind) == [(seq, evidence)]
    return db


# --- tool loops ------------------------------------------------------------------------------


def test_a_tool_loop_is_found_at_the_third_identical_call_and_names_all_three() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    seqs = [call(ev, "r1") for _ in range(3)]
    ev.add("run.completed", agent="a1", run="r1", steps_completed=3)
    db = assert_exactly_at(ev, g.TOOL_LOOP, seqs[2], seqs[0])
    (s,) = signals(db, run="r1")
    assert (s.kind, s.triggers, s.linked_seq) == (g.TOOL_LOOP, tuple(seqs), None)
    assert f"(seqs {seqs[0]}, {seqs[1]}, {seqs[2]})" in findings(db, kinds=[g.TOOL_LOOP])[0].detail
    view = get_run(db, "r1")
    assert view is not None and view.row["state"] == "completed" and not view.row["compliant"]
    assert [v.run for v in list_runs(db, non_compliant=True)] == ["r1"]
    (m,) = agent_metrics(db, "a1")
    assert m.violations == {g.TOOL_LOOP: 1} and m.compliant_runs == 0


@pytest.mark.parametrize(
    "between",
    [{"tool": "kb.search"}, {"digest": OTHER}],
    ids=["another-tool", "same-tool-other-args"],
)
def test_a_different_call_breaks_the_streak(between: dict[str, str]) -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    call(ev, "r1")
    call(ev, "r1")
    call(ev, "r1", **between)
    call(ev, "r1")
    call(ev, "r1")
    assert kinds_at(replay(ev), g.TOOL_LOOP) == []


def test_calls_of_another_run_do_not_break_a_streak_and_a_long_loop_is_reported_once() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    begin(ev, "r2")
    a = call(ev, "r1")
    call(ev, "r2", tool="kb.search")
    b = call(ev, "r1")
    call(ev, "r2", digest=OTHER)
    c = call(ev, "r1")
    call(ev, "r1")
    call(ev, "r1")
    assert [(f.seq, f.evidence_seq, f.run) for f in findings(replay(ev), kinds=[g.TOOL_LOOP])] == [
        (c, a, "r1")
    ]
    assert signals(replay(ev))[0].triggers == (a, b, c)


def test_the_policy_in_force_at_the_call_sets_the_repeats() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    set_policy(ev, tool_loop_repeats=2)
    first = call(ev, "r1")
    second = call(ev, "r1")
    assert_exactly_at(ev, g.TOOL_LOOP, second, first)


# --- cost caps -------------------------------------------------------------------------------


def test_the_run_cost_cap_is_found_at_the_usage_that_reaches_it() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    a = usage(ev, 2_000_000)
    b = usage(ev, 2_000_000)
    c = usage(ev, 1_000_000)  # 5,000,000: the default cap is reached
    usage(ev, 1_000_000)
    db = assert_exactly_at(ev, g.COST_CAP_RUN, c, a)
    assert signals(db, kind=g.COST_CAP_RUN)[0].triggers == (a, b, c)


def test_the_daily_cap_counts_every_run_and_runless_usage_of_the_agent_that_utc_day() -> None:
    ev = Events()
    set_policy(ev, agent_daily_cost_cap_micro_usd=3_000_000)
    begin(ev, "r1", register=True)
    begin(ev, "r2")
    a = usage(ev, 1_000_000, run="r1")
    b = usage(ev, 1_000_000, run=None)
    usage(ev, 2_500_000, agent="a2", run=None)  # another agent: its own day
    c = usage(ev, 1_000_000, run="r2")
    db = assert_exactly_at(ev, g.COST_CAP_DAILY, c, a)
    assert signals(db, kind=g.COST_CAP_DAILY)[0].triggers == (a, b, c)
    assert [f.agent for f in findings(db, kinds=[g.COST_CAP_DAILY])] == ["a1"]


def test_the_daily_spend_starts_again_on_the_next_utc_day() -> None:
    ev = Events(start=START.replace(hour=23, minute=59, second=50))
    set_policy(ev, agent_daily_cost_cap_micro_usd=3_000_000)
    begin(ev, "r1", register=True)
    usage(ev, 2_000_000)
    usage(ev, 2_000_000, at=START.replace(hour=0) + timedelta(days=1))  # 00:00 the next day
    assert kinds_at(replay(ev), g.COST_CAP_DAILY) == []


# --- quality decline -------------------------------------------------------------------------


def score(ev: Events, bp: int, run: str | None = None, agent: str = "a1") -> int:
    return ev.add("feedback.quality", agent=agent, run=run, score_bp=bp, by="u").seq


def test_a_quality_decline_over_the_window_is_found_at_its_last_score() -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract())
    seqs = [score(ev, bp) for bp in (9000, 8600, 8600, 8000, 7400)]  # window 5, drop 1600
    db = assert_exactly_at(ev, g.QUALITY_DECLINE, seqs[-1], seqs[0])
    assert signals(db)[0].triggers == tuple(seqs)


@pytest.mark.parametrize(
    "scores",
    [
        (9000, 8600, 8800, 8000, 7400),
        (9000, 8900, 8800, 8700, 8600),
        (8000, 8000, 8000, 8000, 8000),
    ],
    ids=["recovered", "drop-too-small", "flat"],
)
def test_no_quality_decline_with_a_recovery_or_a_small_drop(scores: tuple[int, ...]) -> None:
    ev = Events()
    for bp in scores:
        score(ev, bp)
    assert kinds_at(replay(ev), g.QUALITY_DECLINE) == []


def test_a_quality_decline_on_a_finished_run_makes_it_non_compliant() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    ev.add("run.completed", agent="a1", run="r1", steps_completed=0)
    for bp in (9000, 8000, 7000, 6000):
        score(ev, bp)
    last = score(ev, 5000, run="r1")
    db = replay(ev)
    view = get_run(db, "r1")
    assert view is not None and [f.seq for f in view.findings] == [last]
    assert not view.row["compliant"]
    mask = db.execute("SELECT mask FROM tier_runs WHERE run = 'r1'").fetchone()[0]
    assert mask & SEVERITY_BITS["warning"]  # the tier evidence sees it


# --- repeated failures -----------------------------------------------------------------------


def fail(ev: Events, run: str, cls: str = "tool_error", agent: str = "a1") -> int:
    begin(ev, run, agent=agent)
    return ev.add("run.failed", agent=agent, run=run, failure_class=cls, message="boom").seq


def test_repeated_failures_are_found_at_the_third_failure_of_the_same_class() -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract())
    seqs = [fail(ev, f"r{i}") for i in range(3)]
    fail(ev, "r9")  # the streak goes on: reported once
    db = assert_exactly_at(ev, g.REPEATED_FAILURE, seqs[2], seqs[0])
    assert signals(db)[0].triggers == tuple(seqs)
    assert signals(db)[0].run == "r2"


@pytest.mark.parametrize("between", ["completed", "other-class", "other-agent"])
def test_a_completed_run_or_another_class_ends_the_failure_streak(between: str) -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract())
    fail(ev, "r1")
    fail(ev, "r2")
    if between == "completed":
        begin(ev, "ok")
        ev.add("run.completed", agent="a1", run="ok", steps_completed=0)
    elif between == "other-class":
        fail(ev, "x", cls="llm_timeout")
    else:
        fail(ev, "x", agent="a2")  # another agent's failure does not break a1's streak
    fail(ev, "r3")
    expected = 1 if between == "other-agent" else 0
    assert len(kinds_at(replay(ev), g.REPEATED_FAILURE)) == expected


# --- guardrails: linked to the signal, and a finding of their own ---------------------------------------------------------


def guard(ev: Events, kind: str, run: str | None = "r1", agent: str = "a1") -> int:
    return ev.add("guardrail.triggered", agent=agent, run=run, kind=kind, severity="warning",
                  detail="runtime").seq  # fmt: skip


def test_a_runtime_tool_loop_guardrail_after_the_signal_is_linked_to_it() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    seqs = [call(ev, "r1") for _ in range(3)]
    gseq = guard(ev, "tool_loop")
    db = replay(ev)
    # What replay derived and what the runtime said: one finding each.
    assert [(f.kind, f.seq) for f in findings(db, run="r1")] == [
        (g.TOOL_LOOP, seqs[2]),
        (g.GUARDRAIL_TRIGGERED, gseq),
    ]
    (s,) = signals(db)
    assert (s.seq, s.linked_seq) == (seqs[2], gseq)
    assert signals(replay(ev.prefix(gseq - 1)))[0].linked_seq is None
    run = get_run(db, "r1")
    assert run is not None and run.row["guardrails"] == 1


def test_a_runtime_guardrail_before_the_signal_is_linked_when_it_fires() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    call(ev, "r1")
    call(ev, "r1")
    gseq = guard(ev, "tool_loop")
    third = call(ev, "r1")
    db = replay(ev)
    (s,) = signals(db)
    assert (s.seq, s.linked_seq) == (third, gseq)
    (loop,) = [f for f in findings(db) if f.kind == g.TOOL_LOOP]
    assert f"guardrail.triggered at seq {gseq} is linked" in loop.detail


def test_budget_and_circuit_break_guardrails_link_to_cost_and_failure_signals() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    cost = usage(ev, 6_000_000)
    budget = guard(ev, "budget_exceeded")
    ev.add("run.failed", agent="a1", run="r1", failure_class="rate_limit", message="429")
    fail(ev, "r2", cls="rate_limit")
    breaker = guard(ev, "circuit_break", run="r2")
    third = fail(ev, "r3", cls="rate_limit")
    guard(ev, "scope_drift")  # a kind with no signal: left alone
    links = {s.kind: (s.seq, s.linked_seq) for s in signals(replay(ev))}
    assert links == {g.COST_CAP_RUN: (cost, budget), g.REPEATED_FAILURE: (third, breaker)}


def test_a_guardrail_with_no_signal_is_still_a_finding_of_its_own() -> None:
    ev = Events()
    begin(ev, "r1", register=True)
    call(ev, "r1")
    gseq = guard(ev, "tool_loop")
    ev.add("run.completed", agent="a1", run="r1", steps_completed=1)
    db = replay(ev)
    assert signals(db) == []
    assert [(f.kind, f.severity, f.seq) for f in findings(db)] == [
        (g.GUARDRAIL_TRIGGERED, "warning", gseq)
    ]
    view = get_run(db, "r1")
    assert view is not None and not view.row["compliant"]


# --- on a real signed ledger, through the command line ---------------------------------------


def test_runs_show_list_and_metrics_report_a_tool_loop(ledger: Ledger, keys: LedgerKeys) -> None:
    rec, gov = keys.recorder, keys.root
    ar = {"agent": "a1", "run": "r1"}
    ledger.append(Draft("agent.registered", contract(), agent="a1"), signer=gov)
    ledger.append(Draft("run.submitted", {"objective": "o", "user": "u", "risk": "low",
                                          "auto_approve": False}, **ar), signer=rec)  # fmt: skip
    ledger.append(Draft("run.approved", {"approver": "gov", "mode": "human",
                                         "plan_digest": DIGEST}, **ar), signer=gov)  # fmt: skip
    ledger.append(Draft("capability.granted", {"tools": ["web.search"], "capabilities": [],
                                               "token_digest": DIGEST}, **ar), signer=gov)  # fmt: skip
    call_ = {"tool": "web.search", "args_digest": DIGEST, "side_effect": "read"}
    ledger.append_many([Draft("run.started", {}, **ar)] + [Draft("tool.called", call_, **ar)] * 3
                       + [Draft("guardrail.triggered", {"kind": "tool_loop", "severity": "warning",
                                                        "detail": "3 repeats"}, **ar),
                          Draft("run.completed", {"steps_completed": 3}, **ar)],
                       signer=rec)  # fmt: skip
    db = str(ledger.path)
    run = CliRunner().invoke(main, ["--db", db, "runs", "show", "r1", "--json"])
    out = json.loads(run.stdout)
    assert (out["compliant"], [f["kind"] for f in out["findings"]]) == (
        False,
        [g.TOOL_LOOP, g.GUARDRAIL_TRIGGERED],
    )
    assert out["findings"][0]["seq"] == 10 and out["findings"][0]["evidence_seq"] == 8
    assert [(s["triggers"], s["linked_seq"]) for s in out["signals"]] == [([8, 9, 10], 11)]
    text = CliRunner(env={"COLUMNS": "300"}).invoke(main, ["--db", db, "runs", "show", "r1"])
    assert (
        "tool_loop at seq 10: triggered by seqs 8, 9, 10, runtime guardrail at seq 11"
        in text.stdout
    )
    listed = CliRunner().invoke(main, ["--db", db, "runs", "list", "--non-compliant", "--json"])
    assert [json.loads(line)["run"] for line in listed.stdout.splitlines()] == ["r1"]
    metrics = CliRunner().invoke(main, ["--db", db, "metrics", "--agent", "a1", "--json"])
    assert json.loads(metrics.stdout)["violations"] == {g.TOOL_LOOP: 1, g.GUARDRAIL_TRIGGERED: 1}
