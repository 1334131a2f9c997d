"""Governance findings: the checks across events that replay computes (SPEC §3).

A finding is ``{kind, severity, seq, evidence_seq}``: ``seq`` is the offending event, and
``evidence_seq`` the event that makes it an offence (the grant, the registration whose contract
was broken, the expired approval...), or null when the evidence is an absence (no grant at all,
no registration). Severities are fixed here and documented in ``docs/projections.md``; a run is
compliant when it completed with no finding of severity ``warning`` or ``critical``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Severity = Literal["info", "warning", "critical"]

STARTED_WITHOUT_APPROVAL: Final = "started_without_approval"
TOOL_OUTSIDE_GRANT: Final = "tool_outside_grant"
GRANT_EXPIRED: Final = "grant_expired"
SIDE_EFFECT_NOT_ALLOWED: Final = "side_effect_not_allowed"
FORBIDDEN_ACTION: Final = "forbidden_action"
LOW_CONFIDENCE_EXECUTE: Final = "low_confidence_execute"
TIER_TOO_LOW: Final = "tier_too_low"
UNREGISTERED_AGENT: Final = "unregistered_agent"
GUARDRAIL_TRIGGERED: Final = "guardrail_triggered"
"""A runtime ``guardrail.triggered`` of severity warning or critical: its severity is the
event's own, so the kind is not in ``SEVERITY``."""
# Reliability signals, derived in replay by ``projections.reliability.fold``.
TOOL_LOOP: Final = "tool_loop"
COST_CAP_RUN: Final = "cost_cap_run"
COST_CAP_DAILY: Final = "cost_cap_daily"
QUALITY_DECLINE: Final = "quality_decline"
REPEATED_FAILURE: Final = "repeated_failure"
# A recorded tier change the evidence does not justify, found by ``projections.tiers.fold``.
UNJUSTIFIED_TIER_CHANGE: Final = "unjustified_tier_change"

SEVERITY: Final[dict[str, Severity]] = {
    STARTED_WITHOUT_APPROVAL: "critical",
    TOOL_OUTSIDE_GRANT: "critical",
    FORBIDDEN_ACTION: "critical",
    GRANT_EXPIRED: "warning",
    SIDE_EFFECT_NOT_ALLOWED: "warning",
    LOW_CONFIDENCE_EXECUTE: "warning",
    TIER_TOO_LOW: "warning",
    UNREGISTERED_AGENT: "warning",
    TOOL_LOOP: "warning",
    COST_CAP_RUN: "warning",
    COST_CAP_DAILY: "warning",
    QUALITY_DECLINE: "warning",
    REPEATED_FAILURE: "warning",
}
"""Finding kind → severity. Later projections (tiers, corrections) may add their own kinds."""

BLOCKING: Final = frozenset({"warning", "critical"})
"""Severities that make a run non-compliant."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One governance finding, as stored in the ``findings`` table."""

    seq: int
    """The offending event."""
    kind: str
    severity: Severity
    evidence_seq: int | None
    """The event that makes it an offence, or None when the evidence is an absence."""
    run: str | None
    agent: str | None
    ts: str
    """``ts`` of the offending event."""
    detail: str
    """One sentence for people: what was expected and what was found."""

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "seq": self.seq,
            "evidence_seq": self.evidence_seq,
            "run": self.run,
            "agent": self.agent,
            "ts": self.ts,
            "detail": self.detail,
        }


def compliant(state: str | None, critical: int, warning: int) -> bool:
    """A run is compliant when it completed with no warning or critical finding (SPEC §3):
    ``critical`` and ``warning`` count its findings of the ``BLOCKING`` severities."""
    return state == "completed" and not (critical or warning)


def effective_tier(tier: int, since_seq: int, last_critical_seq: int | None) -> int:
    """The tier an agent may act at (SPEC §3): 0 once it has a critical finding after the event
    that set its tier, else its tier. The one rule the runs checks (approval, grants,
    ``tier_too_low``), the tiers read model and every reader apply."""
    if last_critical_seq is not None and last_critical_seq > since_seq:
        return 0
    return tier


def grant_verdict(grants: list[tuple[int, str | None]], ts: str) -> tuple[str | None, int | None]:
    """Judge a tool call against the grants that name its tool, oldest first.

    ``grants`` holds ``(seq, expires_at)`` per grant naming the tool (``expires_at`` normalized,
    None for no expiry). Returns ``(None, seq of a live grant)`` when one covers the call at
    ``ts``, ``(GRANT_EXPIRED, seq of the newest expired grant)`` when all have expired (a grant
    is expired from its ``expires_at`` on), ``(TOOL_OUTSIDE_GRANT, None)`` when none names it (the caller cites the run's
    latest grant, if any, as evidence).
    """
    if not grants:
        return TOOL_OUTSIDE_GRANT, None
    for seq, expires in reversed(grants):
        if expires is None or ts < expires:
            return None, seq
    return GRANT_EXPIRED, grants[-1][0]
