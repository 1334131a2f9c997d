"""The runs read model: run state machine, totals, agents' contracts and governance findings.

SPEC §3: the state follows every lifecycle event, legal or not; an illegal transition is kept as
an anomaly on the run, never a crash. Findings are computed here, in replay, from the events
before the offending one (so replaying a prefix gives the findings as they stood then).

Tables: ``runs``, ``agents``, ``findings``, ``anomalies``, ``grants`` (see ``model.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, assert_never

from sqlite_utils import Database

from ledger.encoding import canonical_of_typed
from ledger.events import (
    TS_RE,
    AgentRegistered,
    AnyPayload,
    CapabilityGranted,
    CorrectionRecorded,
    DecisionRecorded,
    Event,
    FeedbackQuality,
    GuardrailTriggered,
    KeyRegistered,
    KeyRevoked,
    LedgerCreated,
    LlmUsage,
    PolicySet,
    RunApproved,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunPlanned,
    RunRejected,
    RunStarted,
    RunSubmitted,
    TierDemoted,
    TierPromoted,
    TierRevoked,
    ToolCalled,
    ToolCompleted,
    UserPayload,
    normalize_time,
)
from projections import checks as c
from projections import governance as g
from projections.base import Projection
from projections.model import (
    AGENTS,
    ANOMALIES,
    FINDINGS,
    GRANTS,
    RUNS,
    Agent,
    Run,
    agent_row,
    run_row,
)
from projections.runs_state import GrantMap, RunsState

# SPEC §3 state machine: event type → (states it may leave, state it enters). ``new`` is a run
# no lifecycle event has touched yet. A repeated approval of an approved run is not an anomaly.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "run.submitted": (frozenset({"new"}), "submitted"),
    "run.approved": (frozenset({"submitted", "approved"}), "approved"),
    "run.rejected": (frozenset({"submitted"}), "rejected"),
    "run.started": (frozenset({"approved"}), "running"),
    "run.completed": (frozenset({"running"}), "completed"),
    "run.failed": (frozenset({"running"}), "failed"),
    "run.cancelled": (frozenset({"submitted", "running"}), "cancelled"),
}
__all__ = ["TERMINAL", "TRANSITIONS", "GrantMap", "RunsProjection", "RunsState"]

TERMINAL = frozenset({"completed", "failed", "cancelled", "rejected"})


def _norm(value: str | None) -> str | None:
    """``normalize_time`` of an optional expiry. A time already in the ledger's ``ts`` form
    (the usual case) is its own normal form once it is known to be a real instant, so the
    parse and re-format are skipped; anything else, errors included, is ``normalize_time``'s."""
    if value is None:
        return None
    if value[:1] != "0" and TS_RE.fullmatch(value):  # a year of four digits, as ``%Y`` writes
        try:
            datetime.fromisoformat(value[:-1])
            return value
        except ValueError:
            pass  # e.g. February 30th: normalize_time gives the error
    return normalize_time(value)


def _ms_between(start: str, end: str) -> int:
    delta = datetime.fromisoformat(end[:-1]) - datetime.fromisoformat(start[:-1])
    return delta // timedelta(milliseconds=1)


class RunsProjection(Projection[RunsState]):
    """Runs, agents, findings and anomalies (SPEC §3)."""

    name = "runs"
    version = 4
    tables = (RUNS, AGENTS, FINDINGS, ANOMALIES, GRANTS)
    depends_on = ("reliability",)
    """Issue 6: the reliability signals fired for an event become findings of its run."""

    def start(self, db: Database, deps: Mapping[str, Any]) -> RunsState:
        return RunsState(db, deps.get("reliability"))

    def prepare(self, state: RunsState, events: Sequence[Event]) -> None:
        # Sorted: rows are then cached, and written, in the same order in every process.
        state.load(sorted({e.run for e in events if e.run is not None}),
                   sorted({e.agent for e in events if e.agent is not None}))  # fmt: skip

    def flush(self, state: RunsState) -> None:
        conn = state.db.conn
        for run in state.runs.values():
            run.compliant = int(g.compliant(run.state, _severities(run)))
        conn.executemany(RUNS.insert_sql(replace=True), map(run_row, state.runs.values()))
        conn.executemany(AGENTS.insert_sql(replace=True), map(agent_row, state.agents.values()))
        conn.executemany(FINDINGS.insert_sql(), state.findings)
        conn.executemany(ANOMALIES.insert_sql(), state.anomalies)
        conn.executemany(GRANTS.insert_sql(), state.grants)
        state.runs.clear()
        state.agents.clear()
        state.grant_maps.clear()
        state.findings.clear()
        state.anomalies.clear()
        state.grants.clear()

    def apply(self, state: RunsState, event: Event, payload: AnyPayload) -> RunsState:
        seq, ts, agent_id, run_id = event.seq, event.ts, event.agent, event.run
        agent = run = None
        if agent_id is not None:
            agent = state.agents.get(agent_id) or state.agent(agent_id)
            agent.events += 1
            agent.first_seq = agent.first_seq or seq
            agent.last_seq = seq
        if run_id is not None:
            run = state.runs.get(run_id) or state.run(run_id)
            run.events += 1
            if not run.first_seq:
                run.first_seq, run.first_ts = seq, ts
            run.last_seq, run.last_ts = seq, ts
            if run.agent is None:
                run.agent = agent_id
        if (
            agent is not None
            and agent.registered_seq is None
            and not isinstance(payload, AgentRegistered)
        ):
            holder = run if run is not None else agent
            if holder.unregistered_seq is None:
                holder.unregistered_seq = seq
                c.find(
                    state,
                    event,
                    run,
                    agent,
                    g.UNREGISTERED_AGENT,
                    None,
                    f"agent {agent.agent!r} is not registered",
                )
        # Contract checks need a registered agent (SPEC §3: skipped for unregistered ones).
        contract = agent if agent is not None and agent.registered_seq is not None else None

        # Arms in order of how common each event is in a log (a class pattern is an isinstance
        # test); the classes are disjoint, so the order changes nothing else.
        match payload:
            case LlmUsage():
                for acc in (agent, run):
                    if acc is not None:
                        acc.llm_calls += 1
                        acc.tokens_in += payload.tokens_in
                        acc.tokens_out += payload.tokens_out
                        acc.cache_read_tokens += payload.cache_read_tokens
                        acc.cache_write_tokens += payload.cache_write_tokens
                        acc.cost_micro_usd += payload.cost_micro_usd
                if run is not None:
                    run.llm_wallclock_ms += payload.wallclock_ms
            case ToolCalled():
                if run is not None:
                    run.tool_calls += 1
                    if run.started_seq is None:
                        c.check_approval(state, event, run, agent)
                    c.check_tool(state, event, run, agent, contract, payload)
            case ToolCompleted():
                if run is not None:
                    run.tool_ms += payload.duration_ms
                    run.tool_errors += payload.status == "error"
            case DecisionRecorded():
                if run is not None:
                    c.decide(state, event, run, agent, contract, payload)
            case RunSubmitted():
                if run is not None:
                    _transition(state, event, run)
                    run.submitted_seq, run.submitted_ts = seq, ts
                    run.objective, run.user = payload.objective, payload.user
                    run.risk, run.auto_approve = payload.risk, int(payload.auto_approve)
            case RunPlanned():
                if run is not None:
                    run.planned_seq, run.planned_steps = seq, len(payload.steps)
                    run.required_tier = payload.required_tier
                    run.risk = payload.risk
                    if contract is not None:
                        c.check_tier(state, event, run, contract, payload.required_tier)
            case RunStarted():
                if run is not None:
                    _transition(state, event, run)
                    run.started_seq, run.started_ts = seq, ts
                    c.check_approval(state, event, run, agent)
            case RunApproved():
                if run is not None:
                    _transition(state, event, run)
                    _approve(run, seq, payload)
            case CapabilityGranted():
                if run is not None:
                    gm = state.grant_map(run.run)
                    expires = _norm(payload.expires_at)
                    for tool in payload.tools:
                        gm.setdefault(tool, []).append((seq, expires))
                    run.grants += 1
                    run.granted_seq = seq
                    state.grants.append(
                        (
                            seq,
                            run.run,
                            agent_id,
                            canonical_of_typed(payload.tools).decode(),
                            canonical_of_typed(payload.capabilities).decode(),
                            expires,
                            payload.token_digest,
                        )
                    )
            case RunCompleted():
                if run is not None:
                    _transition(state, event, run)
                    _end(run, seq, ts)
                    run.steps_completed = payload.steps_completed
            case FeedbackQuality():
                if agent is not None:
                    agent.feedback_count += 1
                    agent.feedback_score_bp_sum += payload.score_bp
            case RunFailed():
                if run is not None:
                    _transition(state, event, run)
                    _end(run, seq, ts)
                    run.failure_class, run.end_reason = payload.failure_class, payload.message
            case RunCancelled():
                if run is not None:
                    _transition(state, event, run)
                    _end(run, seq, ts)
                    run.end_reason = payload.reason
            case GuardrailTriggered():
                if run is not None:
                    run.guardrails += 1
                    run.guardrails_critical += payload.severity == "critical"
            case RunRejected():
                if run is not None:
                    _transition(state, event, run)
                    _end(run, seq, ts)
                    run.rejected_seq = seq
            case AgentRegistered():
                assert agent is not None
                _register(agent, seq, payload)
            case TierPromoted() | TierDemoted() | TierRevoked():
                if agent is not None:
                    agent.tier, agent.tier_since_seq = payload.to, seq
            case (
                CorrectionRecorded()
                | PolicySet()
                | LedgerCreated()
                | KeyRegistered()
                | KeyRevoked()
                | UserPayload()
            ):
                pass
            case _:
                assert_never(payload)
        rel = state.reliability
        if rel is not None and rel.fired_seq == seq:
            # Reliability signals (issue 6), found for this event by the reliability projection.
            for s in rel.fired:
                c.find(state, event, run, agent, s.kind, s.evidence_seq, s.detail)
        return state


def _severities(run: Run) -> tuple[str, ...]:
    return ("critical",) * run.findings_critical + ("warning",) * run.findings_warning


def _transition(state: RunsState, event: Event, run: Run) -> None:
    if event.type == "run.approved" and run.state == "running":
        # A human approving an escalation mid-run (SPEC §3, low_confidence_execute): a
        # decision about the running run, not a step back in its lifecycle.
        return
    allowed, target = TRANSITIONS[event.type]
    if run.state not in allowed:
        run.anomalies += 1
        state.anomalies.append(
            (event.seq, run.run, event.agent, event.type, run.state, target, event.ts)
        )
    run.state = target


def _register(agent: Agent, seq: int, p: AgentRegistered) -> None:
    if agent.registered_seq is None:
        # A first registration sets the tier; registering again keeps it (SPEC §2.4).
        agent.tier, agent.tier_since_seq = p.initial_tier, seq
    agent.registered_seq = seq
    agent.registrations += 1
    agent.owner, agent.version, agent.initial_tier = p.owner, p.version, p.initial_tier
    # Validated lists of strings: ``canonical_of_typed`` gives ``canonical``'s bytes (and its
    # error for a lone surrogate) without walking each string first.
    agent.allowed_side_effects = canonical_of_typed(sorted(set(p.allowed_side_effects))).decode()
    agent.forbidden_actions = canonical_of_typed(sorted(set(p.forbidden_actions))).decode()
    agent.confidence_threshold_bp = p.confidence_threshold_bp


def _approve(run: Run, seq: int, p: RunApproved) -> None:
    expires = _norm(p.expires_at)
    if run.approvals == 0:
        run.approval_until = expires
    elif run.approval_until is not None:
        run.approval_until = None if expires is None else max(run.approval_until, expires)
    run.approvals += 1
    run.approved_seq, run.approval_mode = seq, p.mode
    if p.mode == "human" and run.escalated_seq is not None:
        run.escalation_approved_seq = seq


def _end(run: Run, seq: int, ts: str) -> None:
    if run.ended_seq is not None:
        return  # a second terminal event is an anomaly; the run ended at the first one
    run.ended_seq, run.ended_ts = seq, ts
    begin = run.started_ts or run.submitted_ts
    run.duration_ms = _ms_between(begin, ts) if begin is not None else None
