"""The governance checks of SPEC §3, applied by the runs projection as events are folded.

Each check looks only at the state before the event (the run, the agent's contract in force)
and the event itself, and records findings through ``find``. Kinds and severities are in
``governance.py``; the table of checks is in ``docs/projections.md``.
"""

from __future__ import annotations

import json
from functools import lru_cache

from ledger.event.envelope import DecisionRecorded, EventView, ToolCalled
from projections.findings import kinds as g
from projections.runs.state import RunsState
from projections.runs.tables import Agent, Run


@lru_cache(maxsize=4096)
def _word_set(json_list: str) -> frozenset[str]:
    return frozenset(json.loads(json_list))


def find(
    state: RunsState,
    event: EventView,
    run: Run | None,
    agent: Agent | None,
    kind: str,
    evidence: int | None,
    detail: str,
    severity: g.Severity | None = None,
) -> None:
    """Record a finding of ``kind`` (its severity from ``governance.SEVERITY`` unless given)
    on ``run`` and ``agent``; a critical one zeroes the agent's effective tier from here on."""
    if severity is None:
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


def check_approval(state: RunsState, event: EventView, run: Run, agent: Agent | None) -> None:
    """started_without_approval: a start, or a tool call of a run never started, with no live
    approval before it: a governor's ``run.approved``, or the approval rule's (policy
    ``[approval]``: submitted with ``auto_approve`` at an effective tier that auto-approves
    its risk; a rejection overrules it). Reported once per run."""
    rejected_after = (
        run.rejected_seq is not None
        and run.approved_seq is not None
        and run.rejected_seq > run.approved_seq
    )
    live = (
        run.approvals > 0
        and not rejected_after
        and (run.approval_until is None or event.ts < run.approval_until)
    )
    if run.tier_approved and run.rejected_seq is None:
        live = True
    if live or run.unapproved_seq is not None:
        return
    run.unapproved_seq = event.seq
    if rejected_after:
        detail = f"the approval at seq {run.approved_seq} was overruled by a rejection"
        evidence = run.rejected_seq
    elif run.approvals > 0:
        detail = f"the approval at seq {run.approved_seq} expired at {run.approval_until}"
        evidence = run.approved_seq
    elif run.rejected_seq is not None:
        detail, evidence = f"the run was rejected at seq {run.rejected_seq}", run.rejected_seq
    else:
        detail, evidence = "no run.approved before it", run.submitted_seq
        if run.auto_approve and run.auto_from_tier is not None:
            detail += _auto_refused(run)
    find(state, event, run, agent, g.STARTED_WITHOUT_APPROVAL, evidence, detail)


def check_tool(
    state: RunsState,
    event: EventView,
    run: Run,
    agent: Agent | None,
    contract: Agent | None,
    p: ToolCalled,
) -> None:
    if run.grants == 0 and run.contract_suffices:
        # The grants rule (policy [grants]): started at a tier where a run with no grant is
        # held to the agent's contract alone (checked below).
        kind, evidence = None, None
    else:
        kind, evidence = g.grant_verdict(state.grant_map(run.run).get(p.tool, []), event.ts)
    if kind == g.TOOL_OUTSIDE_GRANT:
        find(
            state,
            event,
            run,
            agent,
            kind,
            run.granted_seq,
            f"tool {p.tool!r} is in no capability.granted of run {run.run!r}"
            + (_no_grant(run) if run.grants == 0 else ""),
        )
    elif kind == g.GRANT_EXPIRED:
        find(
            state,
            event,
            run,
            agent,
            kind,
            evidence,
            f"the grant of {p.tool!r} at seq {evidence} had expired",
        )
    if contract is None:
        return
    forbidden = _word_set(contract.forbidden_actions)
    if p.tool in forbidden or p.side_effect in forbidden:
        what = p.tool if p.tool in forbidden else p.side_effect
        find(
            state,
            event,
            run,
            agent,
            g.FORBIDDEN_ACTION,
            contract.registered_seq,
            f"{what!r} is in the forbidden actions of agent {contract.agent!r}",
        )
    elif p.side_effect not in _word_set(contract.allowed_side_effects):
        find(
            state,
            event,
            run,
            agent,
            g.SIDE_EFFECT_NOT_ALLOWED,
            contract.registered_seq,
            f"side effect {p.side_effect!r} of {p.tool!r} is not allowed for agent "
            f"{contract.agent!r}",
        )


def _auto_refused(run: Run) -> str:
    """Why a run submitted with ``auto_approve`` still needed a governor's approval."""
    need, held = run.auto_from_tier, run.submitted_tier or 0
    if need is None or need > 4:
        return "; the policy in force at its submission never auto-approves a run of its risk"
    if held >= need:
        return "; the agent was not registered at its submission"
    return (
        f"; auto-approval of a run of its risk needs T{need}, the agent held T{held} at its "
        f"submission (seq {run.submitted_seq})"
    )


def _no_grant(run: Run) -> str:
    """Why a run with no grant was not held to the agent's contract alone."""
    need, held = run.contract_from_tier, run.started_tier or 0
    if run.started_seq is None or need is None:
        return " (it has none, and was never started)"
    if need > 4:
        return " (it has none, and the policy in force at its start holds every run to grants)"
    if held >= need:
        return " (it has none, and the agent was not registered at its start)"
    return (
        f" (it has none; the contract alone suffices from T{need}, the agent held T{held} "
        f"at its start, seq {run.started_seq})"
    )


def decide(
    state: RunsState,
    event: EventView,
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
            find(
                state,
                event,
                run,
                agent,
                g.LOW_CONFIDENCE_EXECUTE,
                contract.registered_seq,
                f"EXECUTE at confidence {p.confidence_bp} bp, below the threshold "
                f"{threshold} bp, without an escalation approved by a human",
            )


def check_tier(state: RunsState, event: EventView, run: Run, agent: Agent, required: int) -> None:
    tier, since = state.standing(agent)  # the justified tier: an unjustified change is ignored
    effective = g.effective_tier(tier, since, agent.last_critical_seq)
    if required > effective:
        zeroed = effective != tier
        evidence = agent.last_critical_seq if zeroed else since
        why = f" (0 after the critical finding at seq {evidence})" if zeroed else ""
        find(
            state,
            event,
            run,
            agent,
            g.TIER_TOO_LOW,
            evidence,
            f"the plan requires T{required}; agent {agent.agent!r} holds T{effective}{why}",
        )
