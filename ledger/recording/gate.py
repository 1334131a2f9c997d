"""The gate: may an agent call a tool now? Answered from the read models (SPEC §3, §6).

``judge`` reads the stored read models caught up to the head of the log and applies the checks
the runs projection applies to a recorded ``tool.called`` (``projections.runs.checks``), before
the call instead of after it, so a tool the gate allows is one whose call the audit will not
flag. In order, the first that fails decides:

1. the agent is registered (``unregistered_agent``);
2. neither the tool nor its side-effect class is in the agent's ``forbidden_actions``
   (``forbidden_action``: forbidden wins over allowed);
3. with a run: the run was submitted and has a live approval, a governor's ``run.approved``
   not overruled by a rejection nor expired, or the approval rule of the policy in force at its
   submission (``started_without_approval``);
4. with a run: a run holding grants is held to them (``tool_outside_grant``, ``grant_expired``
   at the current time); a run with none is held to them too unless the agent's effective tier
   at its start reached the policy's ``contract_suffices_from_tier``;
5. the side effect is in the agent's ``allowed_side_effects`` (``side_effect_not_allowed``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ledger.errors import InputError
from ledger.event.clock import now_ts
from ledger.event.drafts import Draft
from ledger.store.base import ReadModels
from ledger.store.sqlite import Ledger
from projections.driver import catch_up
from projections.findings import kinds as g
from projections.projection import META_TABLE
from projections.registry import declared_projections
from projections.tiers.queries import agents as tier_agents

DENIAL_SEVERITY: Final = "warning"
"""Severity of the ``guardrail.triggered`` recording a denial: a denied attempt is a finding
(``guardrail_triggered``) that makes the run non-compliant, though the tool never ran."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer for one tool call."""

    allowed: bool
    reason: str
    """One sentence: what was checked and what was found."""
    finding_kind: str | None = None
    """The finding the call would raise in the audit (``forbidden_action``...), None when allowed."""
    guardrail_seq: int | None = None
    """The seq of the ``guardrail.triggered`` that recorded a denial (None when allowed, or
    when the recorder's failure policy let an unrecorded denial through)."""

    def __bool__(self) -> bool:
        return self.allowed

    def as_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "finding_kind": self.finding_kind,
            "guardrail_seq": self.guardrail_seq,
        }

    @classmethod
    def from_json(cls, value: Any) -> Decision:
        """The decision ``as_json`` wrote (``InputError`` for anything else)."""
        try:
            allowed, reason = value["allowed"], value["reason"]
            kind, seq = value.get("finding_kind"), value.get("guardrail_seq")
        except (KeyError, TypeError, AttributeError) as e:
            raise InputError(f"decision: expected allowed and reason, found {value!r:.200}") from e
        if (
            not isinstance(allowed, bool)
            or not isinstance(reason, str)
            or not isinstance(kind, str | None)
            or not (seq is None or (isinstance(seq, int) and not isinstance(seq, bool)))
        ):
            raise InputError(f"decision: wrong field types in {value!r:.200}")
        return cls(allowed, reason, kind, seq)


def denial_draft(
    decision: Decision, agent: str, tool: str, side_effect: str, run: str | None
) -> Draft:
    """The ``guardrail.triggered`` that records a denial: kind ``forbidden_action`` when the
    call was forbidden, else ``permission_denied``; severity ``warning``; the reason in
    ``detail``."""
    kind = (
        "forbidden_action" if decision.finding_kind == "forbidden_action" else "permission_denied"
    )
    detail = f"tool {tool!r} ({side_effect}) denied: {decision.reason}"
    return Draft(
        "guardrail.triggered",
        {"kind": kind, "severity": DENIAL_SEVERITY, "detail": detail},
        agent=agent,
        run=run,
    )


def current(ledger: Ledger) -> ReadModels:
    """This thread's read models of ``ledger``, caught up to the head of the log. When every
    registered projection already stands at the head (its version, seq and hash in
    ``projection_meta``: two reads), ``catch_up`` and its per-projection checks are skipped."""
    db = ledger.read_models()
    size, head = ledger.head()
    rows = (
        db.execute(f"SELECT name, version, last_seq, last_hash FROM {META_TABLE}").fetchall()
        if db.exists(META_TABLE)
        else []  # never built: catch_up creates the tables
    )
    have = {name: (version, seq, hash_) for name, version, seq, hash_ in rows}
    if any(have.get(p.name) != (p.version, size, head) for p in declared_projections()):
        catch_up(ledger, db)
    return db


def _deny(kind: str, reason: str) -> Decision:
    return Decision(False, reason, kind)


def judge(
    db: ReadModels, agent: str, tool: str, side_effect: str, run: str | None = None
) -> Decision:
    """The gate's decision for ``agent`` calling ``tool`` (of class ``side_effect``) now, in
    ``run`` if given, from read models ``db`` already caught up (see the module docstring)."""
    row = db.execute(
        "SELECT registered_seq, allowed_side_effects, forbidden_actions FROM agents "
        "WHERE agent = ?",
        [agent],
    ).fetchone()
    if row is None or row[0] is None:
        return _deny(
            g.UNREGISTERED_AGENT,
            f"agent {agent!r} is not registered (no agent.registered names it)",
        )
    registered_seq, allowed_json, forbidden_json = row
    forbidden = set(json.loads(forbidden_json))
    if tool in forbidden or side_effect in forbidden:
        what = tool if tool in forbidden else side_effect
        return _deny(
            g.FORBIDDEN_ACTION,
            f"{what!r} is in the forbidden actions of agent {agent!r} (registered at seq "
            f"{registered_seq})",
        )
    how = "its contract"
    if run is not None:
        verdict = _run_verdict(db, agent, tool, run)
        if not verdict.allowed:
            return verdict
        how = verdict.reason
    if side_effect not in set(json.loads(allowed_json)):
        return _deny(
            g.SIDE_EFFECT_NOT_ALLOWED,
            f"side effect {side_effect!r} of {tool!r} is not allowed for agent {agent!r} "
            f"(registered at seq {registered_seq})",
        )
    tiers = tier_agents(db, agent)
    tier = f"T{tiers[0].effective_tier}" if tiers else "T0"
    return Decision(True, f"agent {agent!r} ({tier}) may call {tool!r} ({side_effect}) under {how}")


_RUN_COLUMNS = (
    "agent, state, approvals, approved_seq, approval_until, rejected_seq, tier_approved, "
    "submitted_seq, grants, contract_suffices, started_seq, contract_from_tier, started_tier"
)


def _run_verdict(db: ReadModels, agent: str, tool: str, run: str) -> Decision:
    """Steps 3 and 4 of the module docstring; when allowed, ``reason`` says under what."""
    row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run = ?", [run]).fetchone()
    if row is None or row[7] is None:
        return _deny(g.STARTED_WITHOUT_APPROVAL, f"run {run!r} was never submitted")
    (
        run_agent,
        _state,
        approvals,
        approved_seq,
        until,
        rejected_seq,
        tier_approved,
        _,
        grants,
        contract_suffices,
        started_seq,
        contract_from,
        started_tier,
    ) = row
    if run_agent != agent:
        return _deny(g.TOOL_OUTSIDE_GRANT, f"run {run!r} belongs to agent {run_agent!r}")
    now = now_ts()
    # (3) the approval, as ``projections.runs.checks.check_approval`` judges it.
    rejected_after = (
        rejected_seq is not None and approved_seq is not None and rejected_seq > approved_seq
    )
    live = approvals > 0 and not rejected_after and (until is None or now < until)
    if tier_approved and rejected_seq is None:
        live = True
    if not live:
        if rejected_after or (approvals == 0 and rejected_seq is not None):
            why = f"it was rejected at seq {rejected_seq}"
        elif approvals > 0:
            why = f"its approval at seq {approved_seq} expired at {until}"
        else:
            why = "it has no run.approved and the approval rule of the policy does not approve it"
        return _deny(g.STARTED_WITHOUT_APPROVAL, f"run {run!r} is not approved: {why}")
    approval = (
        "the approval rule" if tier_approved and not approvals else f"approval seq {approved_seq}"
    )
    # (4) the grants rule.
    if grants == 0 and contract_suffices:
        return Decision(True, f"its contract ({approval}; no grant needed at T{started_tier})")
    held = [
        (seq, expires)
        for seq, tools, expires in db.execute(
            "SELECT seq, tools, expires_at FROM grants WHERE run = ? ORDER BY seq", [run]
        )
        if tool in json.loads(tools)
    ]
    kind, evidence = g.grant_verdict(held, now)
    if kind == g.GRANT_EXPIRED:
        return _deny(kind, f"the grant of {tool!r} at seq {evidence} in run {run!r} has expired")
    if kind == g.TOOL_OUTSIDE_GRANT:
        if grants:
            why = "in no capability.granted of the run"
        elif started_seq is None:
            why = "not granted, and the run has not started"
        else:
            why = (
                f"not granted, and the contract alone suffices from T{contract_from}; the agent "
                f"held T{started_tier or 0} at the run's start (seq {started_seq})"
            )
        return _deny(kind, f"tool {tool!r} of run {run!r} is {why}")
    return Decision(True, f"the grant at seq {evidence} ({approval})")
