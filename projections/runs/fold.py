"""The runs read model: run state machine, totals, agents' contracts and governance findings.

SPEC §3: the state follows every lifecycle event, legal or not; an illegal transition is kept as
an anomaly on the run, never a crash. Findings are computed here, in replay, from the events
before the offending one (so replaying a prefix gives the findings as they stood then).

Tables: ``runs``, ``agents``, ``findings``, ``anomalies``, ``grants`` (see ``model.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from ledger.event.canonical import canonical_of_typed
from ledger.event.envelope import (
    AgentRegistered,
    AnyPayload,
    CapabilityGranted,
    CorrectionRecorded,
    DecisionRecorded,
    EventView,
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
from ledger.store.base import ReadModels
from projections.findings import kinds as g
from projections.projection import Projection
from projections.runs import checks as c
from projections.runs.state import POLICY, GrantMap, RunsState
from projections.runs.tables import (
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

# SPEC §3 state machine: event type → (states it may leave, state it enters). None is a run
# no lifecycle event has touched yet (it has no state). A repeated approval of an approved run
# is not an anomaly.
TRANSITIONS: dict[str, tuple[frozenset[str | None], str]] = {
    "run.submitted": (frozenset({None}), "submitted"),
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
    return None if value is None else normalize_time(value)


@lru_cache(maxsize=4096)
def _json_strings(values: tuple[str, ...]) -> str:
    """Canonical JSON of a validated list of strings. Grants name the same few tool and
    capability lists over and over, so each distinct list is encoded once (an error, a lone
    surrogate, is not cached and is raised again for each event holding it)."""
    return canonical_of_typed(list(values)).decode()


def _ms_between(start: str, end: str) -> int:
    delta = datetime.fromisoformat(end[:-1]) - datetime.fromisoformat(start[:-1])
    return delta // timedelta(milliseconds=1)


class RunsProjection(Projection[RunsState]):
    """Runs, agents, findings and anomalies (SPEC §3)."""

    name = "runs"
    version = 7
    tables = (RUNS, AGENTS, FINDINGS, ANOMALIES, GRANTS, POLICY)
    depends_on = ("reliability",)
    """The reliability signals fired for an event become findings of its run."""
    consults = ("tiers",)
    """The tier judge: the approval, grants and tier rules go by the tier the tiers read model
    holds justified as of the event before (an unjustified change must not raise the agent)."""

    def start(self, db: ReadModels, deps: Mapping[str, Any]) -> RunsState:
        return RunsState(db, deps.get("reliability"))

    def attach(self, state: RunsState, consulted: Mapping[str, Any]) -> None:
        state.tiers = consulted["tiers"]

    def prepare(self, state: RunsState, events: Sequence[EventView]) -> None:
        # Sorted: rows are then cached, and written, in the same order in every process.
        state.load(
            sorted({e.run for e in events if e.run is not None}),
            sorted({e.agent for e in events if e.agent is not None}),
        )

    def flush(self, state: RunsState) -> None:
        db = state.db
        for run in state.runs.values():
            run.compliant = int(g.compliant(run.state, run.findings_critical, run.findings_warning))
        db.insert(RUNS, map(run_row, state.runs.values()), replace=True)
        db.insert(AGENTS, map(agent_row, state.agents.values()), replace=True)
        db.insert(FINDINGS, state.findings)
        db.insert(ANOMALIES, state.anomalies)
        db.insert(GRANTS, state.grants)
        state.policy.flush()
        state.runs.clear()
        state.agents.clear()
        state.grant_maps.clear()
        state.findings.clear()
        state.anomalies.clear()
        state.grants.clear()

    def apply(self, state: RunsState, event: EventView, payload: AnyPayload) -> RunsState:
        seq = event.seq
        agent_id = event.agent
        run_id = event.run
        agent = run = contract = None
        if agent_id is not None:
            agent = state.agents.get(agent_id) or state.agent(agent_id)
            agent.events += 1
            if not agent.first_seq:
                agent.first_seq = seq
            agent.last_seq = seq
        if run_id is not None:
            run = state.runs.get(run_id) or state.run(run_id)
            run.events += 1
            ts = event.ts
            if not run.first_seq:
                run.first_seq = seq
                run.first_ts = ts
            run.last_seq = seq
            run.last_ts = ts
            if run.agent is None:
                run.agent = agent_id
        if agent is not None:
            if agent.registered_seq is not None:
                # Contract checks need a registered agent (SPEC §3: skipped otherwise).
                contract = agent
            elif type(payload) is not AgentRegistered:
                _unregistered(state, event, run, agent)
        fold = _FOLDS.get(type(payload))
        if fold is not None:
            fold(state, event, payload, run, agent, contract)
        rel = state.reliability
        if rel is not None and rel.fired_seq == seq:
            # Reliability signals, found for this event by the reliability projection.
            for s in rel.fired:
                c.find(state, event, run, agent, s.kind, s.evidence_seq, s.detail)
        return state


def _unregistered(state: RunsState, event: EventView, run: Run | None, agent: Agent) -> None:
    """One ``unregistered_agent`` finding per run (per agent for run-less events)."""
    holder = run if run is not None else agent
    if holder.unregistered_seq is None:
        holder.unregistered_seq = event.seq
        c.find(
            state,
            event,
            run,
            agent,
            g.UNREGISTERED_AGENT,
            None,
            f"agent {agent.agent!r} is not registered",
        )


# What each event type does to the run and agent it names, beyond the counts every event
# updates. Each takes ``(state, event, payload, run, agent, contract)``: ``run`` and ``agent``
# are None when the event names none, ``contract`` is the agent if it is registered.


def _llm_usage(
    state: RunsState,
    event: EventView,
    p: LlmUsage,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if agent is not None:
        _add_usage(agent, p)
    if run is not None:
        _add_usage(run, p)
        run.llm_wallclock_ms += p.wallclock_ms


def _add_usage(acc: Run | Agent, p: LlmUsage) -> None:
    acc.llm_calls += 1
    acc.tokens_in += p.tokens_in
    acc.tokens_out += p.tokens_out
    acc.cache_read_tokens += p.cache_read_tokens
    acc.cache_write_tokens += p.cache_write_tokens
    acc.cost_micro_usd += p.cost_micro_usd


def _tool_called(
    state: RunsState,
    event: EventView,
    p: ToolCalled,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        run.tool_calls += 1
        if run.started_seq is None:
            c.check_approval(state, event, run, agent)
        c.check_tool(state, event, run, agent, contract, p)


def _tool_completed(
    state: RunsState,
    event: EventView,
    p: ToolCompleted,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        run.tool_ms += p.duration_ms
        run.tool_errors += p.status == "error"


def _decision(
    state: RunsState,
    event: EventView,
    p: DecisionRecorded,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        c.decide(state, event, run, agent, contract, p)


def _submitted(
    state: RunsState,
    event: EventView,
    p: RunSubmitted,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        _transition(state, event, run)
        run.submitted_seq, run.submitted_ts = event.seq, event.ts
        run.objective, run.user = p.objective, p.user
        run.risk, run.auto_approve = p.risk, int(p.auto_approve)
        # The approval rule (policy [approval]): decided once, from the effective tier at
        # submission and the policy in force then.
        if agent is not None:
            run.submitted_tier = state.effective_tier(agent)
        if p.auto_approve:
            approval = state.policy.rules.approval
            run.auto_from_tier = approval.needed(p.risk)
            run.tier_approved = int(
                contract is not None and approval.auto_approves(run.submitted_tier or 0, p.risk)
            )


def _planned(
    state: RunsState,
    event: EventView,
    p: RunPlanned,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        run.planned_seq, run.planned_steps = event.seq, len(p.steps)
        run.required_tier = p.required_tier
        run.risk = p.risk
        if contract is not None:
            c.check_tier(state, event, run, contract, p.required_tier)


def _started(
    state: RunsState,
    event: EventView,
    p: RunStarted,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        _transition(state, event, run)
        run.started_seq, run.started_ts = event.seq, event.ts
        # The grants rule (policy [grants]): from the effective tier at the start.
        if agent is not None:
            run.started_tier = state.effective_tier(agent)
        run.contract_from_tier = state.policy.rules.grants.contract_suffices_from_tier
        run.contract_suffices = int(
            contract is not None and (run.started_tier or 0) >= run.contract_from_tier
        )
        c.check_approval(state, event, run, agent)


def _approved(
    state: RunsState,
    event: EventView,
    p: RunApproved,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        _transition(state, event, run)
        _approve(run, event.seq, p)


def _granted(
    state: RunsState,
    event: EventView,
    p: CapabilityGranted,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is None:
        return
    seq = event.seq
    gm = state.grant_map(run.run)
    expires = _norm(p.expires_at)
    for tool in p.tools:
        gm.setdefault(tool, []).append((seq, expires))
    run.grants += 1
    run.granted_seq = seq
    state.grants.append(
        (
            seq,
            run.run,
            event.agent,
            _json_strings(tuple(p.tools)),
            _json_strings(tuple(p.capabilities)),
            expires,
            p.token_digest,
        )
    )


def _close(state: RunsState, event: EventView, run: Run) -> None:
    """A terminal event: the transition, then the run's end."""
    _transition(state, event, run)
    _end(run, event.seq, event.ts)


def _completed(
    state: RunsState,
    event: EventView,
    p: RunCompleted,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        _close(state, event, run)
        run.steps_completed = p.steps_completed


def _feedback(
    state: RunsState,
    event: EventView,
    p: FeedbackQuality,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if agent is not None:
        agent.feedback_count += 1
        agent.feedback_score_bp_sum += p.score_bp


def _failed(
    state: RunsState,
    event: EventView,
    p: RunFailed,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        _close(state, event, run)
        run.failure_class, run.end_reason = p.failure_class, p.message


def _cancelled(
    state: RunsState,
    event: EventView,
    p: RunCancelled,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        _close(state, event, run)
        run.end_reason = p.reason


def _guardrail(
    state: RunsState,
    event: EventView,
    p: GuardrailTriggered,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        run.guardrails += 1
        run.guardrails_critical += p.severity == "critical"
    if p.severity != "info":
        # A guardrail the runtime raised is a finding of its severity, on its run, else on
        # the agent (SPEC §3): a critical one zeroes the effective tier like any other.
        where = f"run {run.run!r}" if run is not None else f"agent {event.agent!r}"
        c.find(
            state,
            event,
            run,
            agent,
            g.GUARDRAIL_TRIGGERED,
            event.seq,
            f"the runtime raised a {p.severity} {p.kind!r} guardrail on {where}: {p.detail}",
            severity=p.severity,
        )


def _policy(
    state: RunsState,
    event: EventView,
    p: PolicySet,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    state.policy.observe(p, event.seq)


def _rejected(
    state: RunsState,
    event: EventView,
    p: RunRejected,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if run is not None:
        _close(state, event, run)
        run.rejected_seq = event.seq


def _registered(
    state: RunsState,
    event: EventView,
    p: AgentRegistered,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    assert agent is not None
    _register(agent, event.seq, p)


def _tier(
    state: RunsState,
    event: EventView,
    p: TierPromoted | TierDemoted | TierRevoked,
    run: Run | None,
    agent: Agent | None,
    contract: Agent | None,
) -> None:
    if agent is not None:
        agent.tier, agent.tier_since_seq = p.to, event.seq


_FOLDS: dict[type[Any], Callable[..., None]] = {
    LlmUsage: _llm_usage,
    ToolCalled: _tool_called,
    ToolCompleted: _tool_completed,
    DecisionRecorded: _decision,
    RunSubmitted: _submitted,
    RunPlanned: _planned,
    RunStarted: _started,
    RunApproved: _approved,
    CapabilityGranted: _granted,
    RunCompleted: _completed,
    FeedbackQuality: _feedback,
    RunFailed: _failed,
    RunCancelled: _cancelled,
    GuardrailTriggered: _guardrail,
    RunRejected: _rejected,
    AgentRegistered: _registered,
    TierPromoted: _tier,
    TierDemoted: _tier,
    TierRevoked: _tier,
    PolicySet: _policy,
}
"""Payload class → its fold: one dict lookup per event instead of a ``match`` testing the
classes one by one. Classes not here (keys, corrections, ``x.*`` events) only
count towards their run and agent; ``test_runs_folds_cover_the_catalog`` keeps this exhaustive."""
IGNORED: Final = frozenset(
    {CorrectionRecorded, LedgerCreated, KeyRegistered, KeyRevoked, UserPayload}
)
"""Payload classes with no fold of their own (listed for the exhaustiveness test)."""


def _transition(state: RunsState, event: EventView, run: Run) -> None:
    if event.type == "run.approved" and run.state == "running":
        # A human approving an escalation mid-run (SPEC §3, low_confidence_execute): a
        # decision about the running run, not a step back in its lifecycle.
        return
    allowed, target = TRANSITIONS[event.type]
    if run.state not in allowed and not (
        # Approved by its tier at submission (policy [approval]): it may start from there.
        run.tier_approved and event.type == "run.started" and run.state == "submitted"
    ):
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
