"""The tier rules engine: metrics of an agent's finished runs, and the change a policy makes due.

SPEC §3 Tiers. Everything here is a pure function of an agent's tier record, the
outcomes of its finished runs (in the order they finished), a policy and "now", where now is
the ``seq`` and ``ts`` of the last event considered, never the wall clock: anyone replaying the
same log under the same policy gets the same answer. Rules, in order (docs/tiers.md):

1. Revocation: a critical finding after the current tier was set makes the effective tier 0 at
   once; with ``revocation.on_critical`` a ``tier.revoked`` to T0 is due (tier above 0).
2. Demotion: more than ``demotion.max_violations`` runs with a violation (a warning or critical finding) among the last
   ``demotion.window_runs`` runs that finished at the current tier demote by ``demotion.by``.
3. Promotion, one tier at a time, when every criterion of the next tier is met and the cooldown
   after the last demotion or revocation has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from projections.findings.kinds import effective_tier
from projections.policy.document import Policy, PolicyDocument

Change = Literal["promoted", "demoted", "revoked"]
MAX_TIER = 4


@dataclass(slots=True)
class TierAgent:
    """One agent's tier record: a row of the ``tiers`` table."""

    agent: str
    registered_seq: int | None = None
    tier: int = 0
    since_seq: int = 0
    """Seq of the event that set the tier (registration or ``tier.*``)."""
    since_ts: str = ""
    last_demotion_seq: int | None = None
    """Latest justified ``tier.demoted`` or ``tier.revoked``: the cooldown runs from its ts."""
    last_demotion_ts: str | None = None
    last_critical_seq: int | None = None
    """Latest critical finding of the agent (from the runs projection)."""
    finished: int = 0
    """Runs of the agent that finished (ended) so far."""
    changes: int = 0
    """``tier.*`` events recorded for the agent."""
    unjustified_seq: int | None = None
    """The ``tier.*`` event that set ``tier`` when the policy did not justify it, else None."""
    justified_tier: int = 0
    """With ``unjustified_seq``: the tier registration and justified changes alone had set, which
    the rules and the effective tier go by (kept equal to ``tier`` otherwise)."""
    justified_since_seq: int = 0
    justified_since_ts: str = ""

    @property
    def effective_tier(self) -> int:
        """The tier the agent may act at (SPEC §3): the justified tier, ignoring an unjustified
        change, and 0 after a critical finding since that tier was set."""
        s = self.standing()
        return effective_tier(s.tier, s.since_seq, s.last_critical_seq)

    def standing(self) -> TierAgent:
        """The record the rules judge: the recorded tier, or, after an unjustified change, the
        justified tier it replaced (the agent is neither raised nor lowered by it)."""
        if self.unjustified_seq is None:
            return self
        return replace(
            self,
            tier=self.justified_tier,
            since_seq=self.justified_since_seq,
            since_ts=self.justified_since_ts,
            unjustified_seq=None,
        )


@dataclass(frozen=True, slots=True)
class Autonomy:
    """What an agent at an effective tier may start on its own under a policy: the approval
    rule (``[approval]``) and the grants rule (``[grants]``) of SPEC §3."""

    tier: int
    auto_approved_risks: tuple[str, ...]
    """Risks of the runs it may submit with ``auto_approve`` and start with no governor's
    ``run.approved``."""
    without_grant: bool
    """Whether a run it starts with no ``capability.granted`` is held to its contract alone."""

    def as_json(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "auto_approved_risks": list(self.auto_approved_risks),
            "without_grant": self.without_grant,
        }

    def __str__(self) -> str:
        risks = ", ".join(self.auto_approved_risks)
        approval = (
            f"{risks}-risk runs submitted with auto_approve need no governor's approval"
            if risks
            else "every run needs a governor's approval"
        )
        grants = (
            "a run with no grant is held to its contract alone"
            if self.without_grant
            else "every tool call needs a grant"
        )
        return f"at T{self.tier}: {approval}; {grants}"


def autonomy(rules: PolicyDocument, tier: int) -> Autonomy:
    """What an agent at effective ``tier`` may start on its own under ``rules``."""
    risks = tuple(r for r in ("low", "medium", "high") if rules.approval.auto_approves(tier, r))
    return Autonomy(tier, risks, tier >= rules.grants.contract_suffices_from_tier)


RunOutcome = tuple[int, int]
"""``(ended_seq, mask)`` of one finished run; mask bits: see ``projections.policy.document``."""


def seconds_between(earlier: str, later: str) -> int:
    """Whole seconds from one ledger ``ts`` to a later one (0 if it is not later)."""
    a = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
    b = datetime.fromisoformat(later.replace("Z", "+00:00"))
    return max(0, int((b - a).total_seconds()))


@dataclass(frozen=True, slots=True)
class Criterion:
    """One criterion of a promotion: what the policy requires and what the agent has."""

    name: str
    required: int
    actual: int | None
    met: bool
    comparison: Literal[">=", "<="] = ">="

    def as_json(self) -> dict[str, Any]:
        return {
            "criterion": self.name,
            "required": self.required,
            "actual": self.actual,
            "met": self.met,
            "comparison": self.comparison,
        }

    def __str__(self) -> str:
        return f"{self.name}: required {self.comparison} {self.required}, actual {self.actual}"


@dataclass(frozen=True, slots=True)
class Due:
    """A tier change due under a policy, with the evidence it was computed from."""

    agent: str
    change: Change
    from_tier: int
    to_tier: int
    reason: str
    evidence: dict[str, int]
    policy_version: int
    policy_digest: str
    needs_approval: bool = False
    """A promotion into a tier at or above ``human_approval_from_tier``."""

    def payload(self, *, approved: bool = False) -> dict[str, Any]:
        """The ``tier.*`` payload recording this change (SPEC §2.4)."""
        evidence: dict[str, Any] = dict(self.evidence)
        if self.needs_approval:
            evidence["human_approval"] = approved
        return {
            "from": self.from_tier,
            "to": self.to_tier,
            "reason": self.reason,
            "policy_version": self.policy_version,
            "policy_digest": self.policy_digest,
            "evidence": evidence,
        }

    def as_json(self) -> dict[str, Any]:
        """SPEC §5 minimal due change, plus ``reason`` and ``needs_approval``."""
        return {
            "agent": self.agent,
            "change": self.change,
            "from": self.from_tier,
            "to": self.to_tier,
            "evidence": self.evidence,
            "policy_version": self.policy_version,
            "policy_digest": self.policy_digest,
            "reason": self.reason,
            "needs_approval": self.needs_approval,
        }


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything the rules looked at for one agent, and the change due (if any)."""

    agent: TierAgent
    seq: int
    ts: str
    compliant_runs: int
    streak: int
    demotion_window: int
    demotion_violations: int
    criteria: list[Criterion] = field(default_factory=list)
    """Criteria of the next tier, cooldown included (empty at T4 or with no criteria)."""
    next_tier: int | None = None
    due: Due | None = None


def _window(outcomes: Sequence[RunOutcome], n: int, bad: int) -> tuple[int, int]:
    """(runs, runs matching ``bad``: violations) among the last ``n`` of ``outcomes``."""
    last = outcomes[-n:]
    return len(last), sum(1 for _, m in last if m & bad)


def assess(
    agent: TierAgent, outcomes: Sequence[RunOutcome], policy: Policy, *, seq: int, ts: str
) -> Assessment:
    """Apply the rules to ``agent`` as of event ``seq`` (at time ``ts``) under ``policy``.

    ``outcomes`` are the agent's finished runs up to ``seq``, in the order they finished. The
    rules go by ``agent.standing()``: an unjustified change neither raises nor lowers the agent.
    """
    recorded, agent = agent, agent.standing()
    rules: PolicyDocument = policy.rules
    bad = rules.noncompliant_mask
    compliant = sum(1 for _, m in outcomes if not m & bad)
    streak = 0
    for _, m in reversed(outcomes):
        if m & bad:
            break
        streak += 1
    at_tier = [o for o in outcomes if o[0] > agent.since_seq]
    violation = rules.violation_mask
    d_runs, d_bad = _window(at_tier, rules.demotion.window_runs, violation)
    base = (policy.version, policy.digest)

    def result(due: Due | None, criteria: list[Criterion], nxt: int | None) -> Assessment:
        return Assessment(recorded, seq, ts, compliant, streak, d_runs, d_bad, criteria, nxt, due)

    nxt = agent.tier + 1 if agent.tier < MAX_TIER else None
    if agent.registered_seq is None:
        return result(None, [], None)
    # (1) Revocation: any critical finding since the tier was set.
    if rules.revocation.on_critical and agent.tier > 0 and agent.effective_tier == 0:
        crit = agent.last_critical_seq or 0
        due = Due(
            agent.agent,
            "revoked",
            agent.tier,
            0,
            f"critical finding at seq {crit}",
            {"critical_seq": crit, "seq_from": crit, "seq_to": seq},
            *base,
        )
        return result(due, [], nxt)
    # (2) Demotion: too many violations among the runs finished at the current tier.
    if agent.tier > 0 and d_bad > rules.demotion.max_violations:
        to = max(0, agent.tier - rules.demotion.by)
        evidence = {
            "window_runs": d_runs,
            "window_violations": d_bad,
            "max_violations": rules.demotion.max_violations,
            "seq_from": at_tier[-d_runs][0],
            "seq_to": seq,
        }
        due = Due(
            agent.agent,
            "demoted",
            agent.tier,
            to,
            f"{d_bad} of the last {d_runs} runs at T{agent.tier} had a violation "
            f"(at most {rules.demotion.max_violations} allowed)",
            evidence,
            *base,
        )
        return result(due, [], nxt)
    # (3) Promotion into the next tier, if the policy has criteria for it.
    crit_next = rules.criteria_for(nxt) if nxt is not None else None
    if nxt is None or crit_next is None:
        return result(None, [], nxt)
    w_runs, w_bad = _window(outcomes, crit_next.window_runs, violation)
    rate = w_bad * 10000 // w_runs if w_runs else 0
    at_tier_s = seconds_between(agent.since_ts, ts) if agent.since_ts else 0
    criteria = [
        Criterion(
            "min_compliant_runs",
            crit_next.min_compliant_runs,
            compliant,
            compliant >= crit_next.min_compliant_runs,
        ),
        Criterion("min_streak", crit_next.min_streak, streak, streak >= crit_next.min_streak),
        # Exact comparison, no rounding: bad / runs <= max_bp / 10000.
        Criterion(
            "max_violation_rate_bp",
            crit_next.max_violation_rate_bp,
            rate,
            w_bad * 10000 <= crit_next.max_violation_rate_bp * w_runs,
            "<=",
        ),
        Criterion(
            "min_seconds_at_tier",
            crit_next.min_seconds_at_tier,
            at_tier_s,
            at_tier_s >= crit_next.min_seconds_at_tier,
        ),
    ]
    # A critical finding since the tier was set keeps the effective tier at 0 (SPEC §3): no
    # promotion may paper over it, even at T0 or when revocation is off.
    critical = int(
        agent.last_critical_seq is not None and agent.last_critical_seq > agent.since_seq
    )
    criteria.append(Criterion("critical_findings_at_tier", 0, critical, critical == 0, "<="))
    evidence = {
        "compliant_runs": compliant,
        "streak": streak,
        "violation_rate_bp": rate,
        "window_runs": w_runs,
        "window_violations": w_bad,
        "seconds_at_tier": at_tier_s,
    }
    if agent.last_demotion_ts is not None:
        since_demotion = seconds_between(agent.last_demotion_ts, ts)
        criteria.append(
            Criterion(
                "cooldown_seconds",
                rules.cooldown_seconds,
                since_demotion,
                since_demotion >= rules.cooldown_seconds,
            )
        )
        evidence["seconds_since_demotion"] = since_demotion
    evidence["seq_from"] = agent.registered_seq
    evidence["seq_to"] = seq
    if not all(c.met for c in criteria):
        return result(None, criteria, nxt)
    due = Due(
        agent.agent,
        "promoted",
        agent.tier,
        nxt,
        f"every criterion for T{nxt} is met under policy version {policy.version}",
        evidence,
        *base,
        needs_approval=nxt >= rules.human_approval_from_tier,
    )
    return result(due, criteria, nxt)


def judge(
    change: Change,
    payload: dict[str, Any],
    assessment: Assessment,
    policy: Policy,
    signer_role: str | None,
) -> list[str]:
    """Why a recorded ``tier.<change>`` is not justified by ``policy`` (empty: justified).

    ``assessment`` is the agent's assessment as of the event before it, at the event's own
    ``ts`` (recomputation as verification).
    """
    recorded, problems = assessment.agent, []
    agent = recorded.standing()
    frm, to = payload["from"], payload["to"]
    if signer_role is not None and signer_role != "governor":
        problems.append(f"signed by a {signer_role} key, not a governor")
    if agent.registered_seq is None:
        return [*problems, f"agent {agent.agent!r} is not registered"]
    if recorded.unjustified_seq is not None and (frm, to) == (recorded.tier, agent.tier):
        return problems  # undoes the unjustified change: back to the tier the policy justifies
    if frm != agent.tier:
        problems.append(
            f"from T{frm}, but the agent held T{agent.tier} since seq {agent.since_seq}"
        )
    if (payload["policy_version"], payload["policy_digest"]) != (policy.version, policy.digest):
        problems.append(
            f"cites policy version {payload['policy_version']}, but version "
            f"{policy.version} was in force"
        )
    due = assessment.due
    if change == "promoted":
        if to != agent.tier + 1:
            problems.append(f"T{agent.tier} → T{to} is not one tier up")
        elif due is None or due.change != "promoted":
            unmet = [str(c) for c in assessment.criteria if not c.met]
            if unmet:
                problems.append(f"criteria for T{to} not met: " + "; ".join(unmet))
            elif due is not None:
                problems.append(f"a {due.change} to T{due.to_tier} was due instead")
            else:
                problems.append(f"the policy has no promotion into T{to}")
        elif due.needs_approval and payload["evidence"].get("human_approval") is not True:
            problems.append(
                f"promotion into T{to} needs an explicit human decision (evidence.human_approval)"
            )
    elif change == "demoted":
        if to >= agent.tier:
            problems.append(f"T{agent.tier} → T{to} is not a demotion")
        elif due is None or due.change == "promoted":
            problems.append(
                f"the demotion rule does not hold: {assessment.demotion_violations} of the last "
                f"{assessment.demotion_window} runs at T{agent.tier} had a violation "
                f"(demote above {policy.rules.demotion.max_violations})"
            )
        elif due.change == "demoted" and to < due.to_tier:
            problems.append(f"demotes to T{to}, the policy demotes to T{due.to_tier}")
    elif to != 0:
        problems.append(f"a revocation goes to T0, not T{to}")
    return problems
