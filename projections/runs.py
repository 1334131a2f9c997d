"""The runs read model: run state machine, totals, agents' contracts and governance findings.

SPEC §3: the state follows every lifecycle event, legal or not; an illegal transition is kept as
an anomaly on the run, never a crash. Findings are computed here, in replay, from the events
before the offending one (so replaying a prefix gives the findings as they stood then).

Tables: ``runs``, ``agents``, ``findings``, ``anomalies``, ``grants`` (see ``model.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, assert_never

from sqlite_utils import Database

from ledger.encoding import canonical
from ledger.events import (
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
from projections import governance as g
from projections.base import Projection, Table
from projections.model import (
    AGENT_FIELDS,
    AGENTS,
    ANOMALIES,
    FINDINGS,
    GRANTS,
    RUN_FIELDS,
    RUNS,
    Agent,
    Run,
    agent_row,
    run_row,
)

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
TERMINAL = frozenset({"completed", "failed", "cancelled", "rejected"})

_RUN_SELECT = f"SELECT {', '.join(RUN_FIELDS)} FROM runs WHERE run = ?"
_AGENT_SELECT = f"SELECT {', '.join(AGENT_FIELDS)} FROM agents WHERE agent = ?"

GrantMap = dict[str, list[tuple[int, str | None]]]
"""Tool → ``(seq, expires_at)`` of each grant of the run naming it, oldest first."""


@lru_cache(maxsize=4096)
def _word_set(json_list: str) -> frozenset[str]:
    return frozenset(json.loads(json_list))


def _norm(value: str | None) -> str | None:
    return None if value is None else normalize_time(value)


def _ms_between(start: str, end: str) -> int:
    delta = datetime.fromisoformat(end[:-1]) - datetime.fromisoformat(start[:-1])
    return delta // timedelta(milliseconds=1)


class RunsState:
    """The runs read model being folded: rows touched since the last flush, loaded on demand."""

    __slots__ = ("db", "runs", "agents", "grant_maps", "findings", "anomalies", "grants")

    def __init__(self, db: Database) -> None:
        self.db = db
        self.runs: dict[str, Run] = {}
        self.agents: dict[str, Agent] = {}
        self.grant_maps: dict[str, GrantMap] = {}
        self.findings: list[tuple[Any, ...]] = []
        self.anomalies: list[tuple[Any, ...]] = []
        self.grants: list[tuple[Any, ...]] = []

    def run(self, run_id: str) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            row = self.db.execute(_RUN_SELECT, [run_id]).fetchone()
            run = Run(*row) if row else Run(run_id)
            self.runs[run_id] = run
        return run

    def agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            row = self.db.execute(_AGENT_SELECT, [agent_id]).fetchone()
            agent = Agent(*row) if row else Agent(agent_id)
            self.agents[agent_id] = agent
        return agent

    def grant_map(self, run_id: str) -> GrantMap:
        gm = self.grant_maps.get(run_id)
        if gm is None:
            gm = {}
            rows = self.db.execute(
                "SELECT seq, tools, expires_at FROM grants WHERE run = ? ORDER BY seq", [run_id]
            )
            for seq, tools, expires in rows:
                for tool in json.loads(tools):
                    gm.setdefault(tool, []).append((seq, expires))
            self.grant_maps[run_id] = gm
        return gm


class RunsProjection(Projection[RunsState]):
    """Runs, agents, findings and anomalies (SPEC §3)."""

    name = "runs"
    version = 1
    tables: tuple[Table, ...] = (RUNS, AGENTS, FINDINGS, ANOMALIES, GRANTS)

    def start(self, db: Database, deps: Mapping[str, Any]) -> RunsState:
        return RunsState(db)

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
        seq, ts = event.seq, event.ts
        agent = state.agent(event.agent) if event.agent is not None else None
        run = state.run(event.run) if event.run is not None else None
        if agent is not None:
            agent.events += 1
            agent.first_seq = agent.first_seq or seq
            agent.last_seq = seq
        if run is not None:
            run.events += 1
            if not run.first_seq:
                run.first_seq, run.first_ts = seq, ts
            run.last_seq, run.last_ts = seq, ts
            if run.agent is None:
                run.agent = event.agent
        if (
            agent is not None
            and agent.registered_seq is None
            and not isinstance(payload, AgentRegistered)
        ):
            holder = run if run is not None else agent
            if holder.unregistered_seq is None:
                holder.unregistered_seq = seq
                _find(state, event, run, agent, g.UNREGISTERED_AGENT, None,
                      f"agent {agent.agent!r} is not registered")
        # Contract checks need a registered agent (SPEC §3: skipped for unregistered ones).
        contract = agent if agent is not None and agent.registered_seq is not None else None

        match payload:
            case AgentRegistered():
                assert agent is not None
                _register(agent, seq, payload)
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
                        _check_tier(state, event, run, contract, payload.required_tier)
            case RunApproved():
                if run is not None:
                    _transition(state, event, run)
                    _approve(run, seq, payload)
            case RunRejected():
                if run is not None:
                    _transition(state, event, run)
                    _end(run, seq, ts)
                    run.rejected_seq = seq
            case CapabilityGranted():
                if run is not None:
                    gm = state.grant_map(run.run)
                    expires = _norm(payload.expires_at)
                    for tool in payload.tools:
                        gm.setdefault(tool, []).append((seq, expires))
                    run.grants += 1
                    run.granted_seq = seq
                    state.grants.append(
                        (seq, run.run, event.agent, canonical(payload.tools).decode(),
                         canonical(payload.capabilities).decode(), expires,
                         payload.token_digest)
                    )
            case RunStarted():
                if run is not None:
                    _transition(state, event, run)
                    run.started_seq, run.started_ts = seq, ts
                    _check_approval(state, event, run, agent)
            case ToolCalled():
                if run is not None:
                    run.tool_calls += 1
                    if run.started_seq is None:
                        _check_approval(state, event, run, agent)
                    _check_tool(state, event, run, agent, contract, payload)
            case ToolCompleted():
                if run is not None:
                    run.tool_ms += payload.duration_ms
                    run.tool_errors += payload.status == "error"
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
            case DecisionRecorded():
                if run is not None:
                    _decide(state, event, run, agent, contract, payload)
            case GuardrailTriggered():
                if run is not None:
                    run.guardrails += 1
                    run.guardrails_critical += payload.severity == "critical"
            case RunCompleted():
                if run is not None:
                    _transition(state, event, run)
                    _end(run, seq, ts)
                    run.steps_completed = payload.steps_completed
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
            case FeedbackQuality():
                if agent is not None:
                    agent.feedback_count += 1
                    agent.feedback_score_bp_sum += payload.score_bp
            case TierPromoted() | TierDemoted() | TierRevoked():
                if agent is not None:
                    agent.tier, agent.tier_since_seq = payload.to, seq
            case (
                LedgerCreated()
                | KeyRegistered()
                | KeyRevoked()
                | PolicySet()
                | CorrectionRecorded()
                | UserPayload()
            ):
                pass
            case _:
                assert_never(payload)
        return state


def _severities(run: Run) -> tuple[str, ...]:
    return ("critical",) * run.findings_critical + ("warning",) * run.findings_warning


def _find(
    state: RunsState,
    event: Event,
    run: Run | None,
    agent: Agent | None,
    kind: str,
    evidence: int | None,
    detail: str,
) -> None:
    severity = g.SEVERITY[kind]
    state.findings.append(
        (event.seq, kind, severity, evidence, event.run, event.agent, event.ts, detail)
    )
    if run is not None:
        run.findings += 1
        run.findings_critical += severity == "critical"
        run.findings_warning += severity == "warning"
    if agent is not None and severity == "critical":
        agent.last_critical_seq = event.seq


def _transition(state: RunsState, event: Event, run: Run) -> None:
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
    agent.allowed_side_effects = canonical(sorted(set(p.allowed_side_effects))).decode()
    agent.forbidden_actions = canonical(sorted(set(p.forbidden_actions))).decode()
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
    run.ended_seq, run.ended_ts = seq, ts
    begin = run.started_ts or run.submitted_ts
    run.duration_ms = _ms_between(begin, ts) if begin is not None else None


def _check_approval(state: RunsState, event: Event, run: Run, agent: Agent | None) -> None:
    """started_without_approval: a start, or a tool call of a run never started, with no live
    approval before it. Reported once per run."""
    live = run.approvals > 0 and (run.approval_until is None or event.ts < run.approval_until)
    if live or run.unapproved_seq is not None:
        return
    run.unapproved_seq = event.seq
    if run.approvals > 0:
        detail = f"the approval at seq {run.approved_seq} expired at {run.approval_until}"
        evidence = run.approved_seq
    elif run.rejected_seq is not None:
        detail, evidence = f"the run was rejected at seq {run.rejected_seq}", run.rejected_seq
    else:
        detail, evidence = "no run.approved before it", run.submitted_seq
    _find(state, event, run, agent, g.STARTED_WITHOUT_APPROVAL, evidence, detail)


def _check_tool(
    state: RunsState,
    event: Event,
    run: Run,
    agent: Agent | None,
    contract: Agent | None,
    p: ToolCalled,
) -> None:
    kind, evidence = g.grant_verdict(state.grant_map(run.run).get(p.tool, []), event.ts)
    if kind == g.TOOL_OUTSIDE_GRANT:
        _find(state, event, run, agent, kind, run.granted_seq,
              f"tool {p.tool!r} is in no capability.granted of run {run.run!r}")
    elif kind == g.GRANT_EXPIRED:
        _find(state, event, run, agent, kind, evidence,
              f"the grant of {p.tool!r} at seq {evidence} had expired")
    if contract is None:
        return
    forbidden = _word_set(contract.forbidden_actions)
    if p.tool in forbidden or p.side_effect in forbidden:
        what = p.tool if p.tool in forbidden else p.side_effect
        _find(state, event, run, agent, g.FORBIDDEN_ACTION, contract.registered_seq,
              f"{what!r} is in the forbidden actions of agent {contract.agent!r}")
    elif p.side_effect not in _word_set(contract.allowed_side_effects):
        _find(state, event, run, agent, g.SIDE_EFFECT_NOT_ALLOWED, contract.registered_seq,
              f"side effect {p.side_effect!r} of {p.tool!r} is not allowed for agent "
              f"{contract.agent!r}")


def _decide(
    state: RunsState,
    event: Event,
    run: Run,
    agent: Agent | None,
    contract: Agent | None,
    p: DecisionRecorded,
) -> None:
    run.decisions += 1
    if p.decision == "ESCALATE":
        run.escalations += 1
        run.escalated_seq = event.seq
    elif p.decision == "EXECUTE":
        run.executes += 1
        threshold = contract.confidence_threshold_bp if contract is not None else None
        if (
            contract is not None
            and threshold is not None
            and p.confidence_bp < threshold
            and run.escalation_approved_seq is None
        ):
            _find(state, event, run, agent, g.LOW_CONFIDENCE_EXECUTE, contract.registered_seq,
                  f"EXECUTE at confidence {p.confidence_bp} bp, below the threshold "
                  f"{threshold} bp, without an escalation approved by a human")


def _check_tier(state: RunsState, event: Event, run: Run, agent: Agent, required: int) -> None:
    effective = g.effective_tier(agent.tier, agent.tier_since_seq, agent.last_critical_seq)
    if required > effective:
        zeroed = effective != agent.tier
        evidence = agent.last_critical_seq if zeroed else agent.tier_since_seq
        why = f" (0 after the critical finding at seq {evidence})" if zeroed else ""
        _find(state, event, run, agent, g.TIER_TOO_LOW, evidence,
              f"the plan requires T{required}; agent {agent.agent!r} holds T{effective}{why}")
