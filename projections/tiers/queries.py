"""Reading the tiers read model: tiers, due changes, history, explanations, findings.

Every function takes a ``ReadModels`` holding the tables of ``projections.tiers.fold`` (the stored read
models after ``catch_up``, or a scratch database from ``build_at`` for time travel) and only
reads. "Now" is the read model's clock: the seq and ts of the last event folded into it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger.store.base import ReadModels
from projections.findings import kinds as g
from projections.policy.document import Policy, make_policy
from projections.tiers.fold import TIER_FIELDS, TIER_FINDINGS, load_policy
from projections.tiers.rules import Assessment, Due, RunOutcome, TierAgent, assess


def clock(db: ReadModels) -> tuple[int, str]:
    """``(seq, ts)`` of the last event folded into the read model; ``(0, "")`` when empty."""
    if not db.exists("tier_clock"):
        return 0, ""
    row = db.execute("SELECT seq, ts FROM tier_clock WHERE name = 'head'").fetchone()
    return (0, "") if row is None else (int(row[0]), str(row[1]))


def policy_in_force(db: ReadModels, seq: int | None = None) -> Policy:
    """The policy of the last valid ``policy.set`` at or before ``seq`` (default: the read
    model's clock), else the shipped default (version 0)."""
    at = clock(db)[0] if seq is None else seq
    row = db.execute(
        "SELECT seq, version, digest, document FROM tier_policies WHERE error IS NULL "
        "AND seq <= ? ORDER BY seq DESC LIMIT 1",
        [at],
    ).fetchone()
    return load_policy(row)


def hypothetical(db: ReadModels, document: dict[str, Any]) -> Policy:
    """``document`` as the policy it would be if set now (version: the one in force + 1)."""
    return make_policy(document, version=policy_in_force(db).version + 1)


def agents(db: ReadModels, agent: str | None = None) -> list[TierAgent]:
    """Agents with a tier (registered, or named by a ``tier.*`` event), by agent id."""
    one, params = ("AND agent = ?", [agent]) if agent is not None else ("", [])
    rows = db.execute(
        f"SELECT {', '.join(TIER_FIELDS)} FROM tiers "
        f"WHERE (registered_seq IS NOT NULL OR changes > 0) {one} ORDER BY agent",
        params,
    )
    return [TierAgent(*r) for r in rows]


def tier_json(a: TierAgent) -> dict[str, Any]:
    """SPEC §5 minimal tier ``{"agent", "tier", "effective_tier", "since_seq"}`` and more:
    ``unjustified_seq`` flags a recorded tier the policy did not justify (its finding's seq),
    and ``justified_tier`` is the tier the effective tier goes by."""
    return {
        "agent": a.agent,
        "tier": a.tier,
        "effective_tier": a.effective_tier,
        "since_seq": a.since_seq,
        "since_ts": a.since_ts,
        "registered_seq": a.registered_seq,
        "last_critical_seq": a.last_critical_seq,
        "last_demotion_seq": a.last_demotion_seq,
        "finished_runs": a.finished,
        "unjustified_seq": a.unjustified_seq,
        "justified_tier": a.standing().tier,
    }


def outcomes(db: ReadModels, agent: str | None = None) -> dict[str, list[RunOutcome]]:
    """Each agent's finished runs ``(ended_seq, mask)``, in the order they finished."""
    one, params = ("WHERE agent = ?", [agent]) if agent is not None else ("", [])
    out: dict[str, list[RunOutcome]] = {}
    for name, ended, mask in db.execute(
        f"SELECT agent, ended_seq, mask FROM tier_runs {one} ORDER BY agent, ord", params
    ):
        out.setdefault(name, []).append((ended, mask))
    return out


def assess_all(
    db: ReadModels, policy: Policy | None = None, agent: str | None = None
) -> list[Assessment]:
    """Every agent (or one) assessed now, under ``policy`` (default: the one in force)."""
    pol = policy if policy is not None else policy_in_force(db)
    seq, ts = clock(db)
    runs = outcomes(db, agent)
    return [assess(a, runs.get(a.agent, []), pol, seq=seq, ts=ts) for a in agents(db, agent)]


def compute_due(db: ReadModels, policy: Policy | None = None) -> list[Due]:
    """The tier changes due now under ``policy`` (default: the one in force), by agent."""
    return [a.due for a in assess_all(db, policy) if a.due is not None]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of an agent's tier: its registration or a ``tier.*`` event, re-judged."""

    seq: int
    agent: str
    change: str
    """``registered``, ``promoted``, ``demoted`` or ``revoked``."""
    from_tier: int | None
    to_tier: int
    ts: str
    key: str
    reason: str
    policy_version: int | None
    policy_digest: str | None
    evidence: dict[str, Any] | None
    justified: bool
    problems: list[str]
    finding: g.Finding | None = None
    """The ``unjustified_tier_change`` finding of an unjustified change."""

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "agent": self.agent,
            "change": self.change,
            "from": self.from_tier,
            "to": self.to_tier,
            "ts": self.ts,
            "key": self.key,
            "reason": self.reason,
            "policy_version": self.policy_version,
            "policy_digest": self.policy_digest,
            "evidence": self.evidence,
            "justified": self.justified,
            "problems": self.problems,
            "finding": None if self.finding is None else self.finding.as_json(),
        }


def history(db: ReadModels, agent: str | None = None) -> list[HistoryEntry]:
    """Tier history in seq order (one agent, or all), each unjustified change with its finding."""
    one, params = ("WHERE h.agent = ?", [agent]) if agent is not None else ("", [])
    fcols = ", ".join(f"f.{c}" for c in TIER_FINDINGS.column_names)
    out = []
    for r in db.execute(
        "SELECT h.seq, h.agent, h.change, h.from_tier, h.to_tier, h.ts, h.key, h.reason, "
        "h.policy_version, h.policy_digest, h.evidence, h.justified, h.problems, "
        f"{fcols} FROM tier_history h LEFT JOIN tier_findings f ON f.seq = h.seq "
        f"AND f.kind = ? {one} ORDER BY h.seq",
        [g.UNJUSTIFIED_TIER_CHANGE, *params],
    ):
        seq, name, change, frm, to, ts, key, reason, version, digest, ev, ok, problems = r[:13]
        finding = None if r[13] is None else g.Finding(*r[13:])
        out.append(
            HistoryEntry(
                seq,
                name,
                change,
                frm,
                to,
                ts,
                key,
                reason,
                version,
                digest,
                None if ev is None else json.loads(ev),
                bool(ok),
                json.loads(problems),
                finding,
            )
        )
    return out


def tier_findings(db: ReadModels, agent: str | None = None) -> list[g.Finding]:
    """``unjustified_tier_change`` findings in seq order (one agent, or all)."""
    one, params = ("WHERE agent = ?", [agent]) if agent is not None else ("", [])
    cols = ", ".join(TIER_FINDINGS.column_names)
    return [
        g.Finding(*r)
        for r in db.execute(f"SELECT {cols} FROM tier_findings {one} ORDER BY seq", params)
    ]
