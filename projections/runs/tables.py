"""Rows of the runs read model and the SQLite tables they live in (SPEC §3).

``Run`` and ``Agent`` are the rows of the ``runs`` and ``agents`` tables, one field per column,
so the tables are derived from the dataclasses and a row read back from SQLite is the same
object the fold wrote. Lists (allowed side effects, grant tools...) are stored as canonical JSON
text so the tables stay plain and any SQLite tool can read them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from projections.projection import Table


@dataclass(slots=True)
class Run:
    """One run: its state in the SPEC §3 state machine and everything recorded about it."""

    run: str
    agent: str | None = None
    state: str | None = None
    """The state of the SPEC §3 machine (``submitted``, ``approved``, ``rejected``,
    ``running``, ``completed``, ``failed``, ``cancelled``); None until the run's first
    lifecycle event (its other events were recorded without it)."""
    compliant: int = 0
    events: int = 0
    first_seq: int = 0
    first_ts: str = ""
    last_seq: int = 0
    last_ts: str = ""
    submitted_seq: int | None = None
    submitted_ts: str | None = None
    objective: str | None = None
    user: str | None = None
    risk: str | None = None
    auto_approve: int | None = None
    planned_seq: int | None = None
    planned_steps: int | None = None
    required_tier: int | None = None
    approvals: int = 0
    approved_seq: int | None = None
    approval_mode: str | None = None
    approval_until: str | None = None
    """Latest expiry among the approvals (normalized); None with approvals > 0 means none expire."""
    rejected_seq: int | None = None
    grants: int = 0
    granted_seq: int | None = None
    """The latest ``capability.granted`` of the run."""
    started_seq: int | None = None
    started_ts: str | None = None
    ended_seq: int | None = None
    ended_ts: str | None = None
    duration_ms: int | None = None
    """From ``run.started`` (else ``run.submitted``) to the terminal event."""
    steps_completed: int | None = None
    failure_class: str | None = None
    end_reason: str | None = None
    """The ``run.failed`` message or the ``run.cancelled`` reason."""
    tool_calls: int = 0
    tool_errors: int = 0
    tool_ms: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micro_usd: int = 0
    llm_wallclock_ms: int = 0
    decisions: int = 0
    executes: int = 0
    escalations: int = 0
    escalated_seq: int | None = None
    escalation_approved_seq: int | None = None
    """A human ``run.approved`` after an ESCALATE decision: low-confidence EXECUTEs are cleared."""
    guardrails: int = 0
    guardrails_critical: int = 0
    anomalies: int = 0
    findings: int = 0
    findings_critical: int = 0
    findings_warning: int = 0
    unregistered_seq: int | None = None
    """First event of this run for an agent not registered at that point (one finding per run)."""
    unapproved_seq: int | None = None
    """The start (or tool call) found without a live approval (one finding per run)."""
    submitted_tier: int | None = None
    """The agent's effective tier at the submission (the approval rule, policy ``[approval]``)."""
    auto_from_tier: int | None = None
    """For a run submitted with ``auto_approve``: the effective tier from which the policy in
    force at the submission approves a run of its risk (5: never)."""
    tier_approved: int = 0
    """1 when the approval rule lets the run start with no governor's ``run.approved``."""
    started_tier: int | None = None
    """The agent's effective tier at ``run.started`` (the grants rule, policy ``[grants]``)."""
    contract_from_tier: int | None = None
    """The policy's ``contract_suffices_from_tier`` in force at ``run.started``."""
    contract_suffices: int = 0
    """1 when, while the run has no grant, its tool calls are held to the contract alone."""


@dataclass(slots=True)
class Agent:
    """One agent: its registered contract, its tier, and totals not tied to a run."""

    agent: str
    registered_seq: int | None = None
    """The registration in force (the latest ``agent.registered``), None if never registered."""
    registrations: int = 0
    owner: str | None = None
    version: str | None = None
    initial_tier: int | None = None
    allowed_side_effects: str = "[]"
    """JSON list."""
    forbidden_actions: str = "[]"
    """JSON list of tool names or side-effect classes."""
    confidence_threshold_bp: int | None = None
    tier: int = 0
    tier_since_seq: int = 0
    last_critical_seq: int | None = None
    unregistered_seq: int | None = None
    """First run-less event for this agent while unregistered (one finding per agent)."""
    events: int = 0
    first_seq: int = 0
    last_seq: int = 0
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_micro_usd: int = 0
    feedback_count: int = 0
    feedback_score_bp_sum: int = 0


def _sql_type(annotation: Any) -> type:
    hint = annotation
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return int if hint is int else str


def _columns(cls: type[Any]) -> tuple[tuple[str, type], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _sql_type(hints[f.name])) for f in dataclasses.fields(cls))


RUNS = Table(
    "runs",
    _columns(Run),
    pk=("run",),
    indexes=(("agent", "ended_seq"), ("first_ts",)),
)
AGENTS = Table("agents", _columns(Agent), pk=("agent",))
FINDINGS = Table(
    "findings",
    (
        ("seq", int),
        ("kind", str),
        ("severity", str),
        ("evidence_seq", int),
        ("run", str),
        ("agent", str),
        ("ts", str),
        ("detail", str),
    ),
    pk=("seq", "kind"),
    indexes=(("run",), ("agent", "seq")),
)
ANOMALIES = Table(
    "anomalies",
    (
        ("seq", int),
        ("run", str),
        ("agent", str),
        ("type", str),
        ("from_state", str),
        ("to_state", str),
        ("ts", str),
    ),
    pk=("seq",),
    indexes=(("run",),),
)
GRANTS = Table(
    "grants",
    (
        ("seq", int),
        ("run", str),
        ("agent", str),
        ("tools", str),
        ("capabilities", str),
        ("expires_at", str),
        ("token_digest", str),
    ),
    pk=("seq",),
    indexes=(("run",),),
)

RUN_FIELDS = RUNS.column_names
AGENT_FIELDS = AGENTS.column_names


run_row: Callable[[Run], tuple[Any, ...]] = attrgetter(*RUN_FIELDS)
"""The ``runs`` row of a run, columns in table order (one C call: flushes write many rows)."""
agent_row: Callable[[Agent], tuple[Any, ...]] = attrgetter(*AGENT_FIELDS)
"""The ``agents`` row of an agent, columns in table order."""
