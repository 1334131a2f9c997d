"""Helpers for the tier tests: hand-built logs (``projections.testing.Events``) with runs,
policies and tier changes, folded in memory."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from ledger.store.base import ReadModels
from ledger.store.sqlite_read_models import memory
from projections.driver import catch_up
from projections.policy.document import default_document, digest_of
from projections.testing import DIGEST, Events, contract
from projections.tiers.queries import assess_all, compute_due
from projections.tiers.rules import Assessment, Due


def policy_doc(**overrides: Any) -> dict[str, Any]:
    """The default policy document with ``section__field=value`` / ``field=value`` overrides;
    ``T1=dict(...)`` replaces a tier's promotion criteria."""
    doc = copy.deepcopy(default_document())
    for key, value in overrides.items():
        if key in ("T1", "T2", "T3", "T4"):
            doc["promotion"][key] = value
        elif "__" in key:
            section, field = key.split("__")
            doc[section][field] = value
        else:
            doc[key] = value
    return doc


EASY = {
    "min_compliant_runs": 0,
    "min_streak": 0,
    "max_violation_rate_bp": 10000,
    "window_runs": 10,
    "min_seconds_at_tier": 0,
}


def set_policy(ev: Events, doc: dict[str, Any], version: int) -> int:
    return ev.add("policy.set", version=version, digest=digest_of(doc), document=doc).seq


def register(ev: Events, agent: str = "a1", tier: int = 0) -> int:
    return ev.add("agent.registered", agent=agent, **contract(tier=tier)).seq


def run(
    ev: Events,
    agent: str,
    name: str,
    *,
    ok: bool = True,
    critical: bool = False,
    warning: bool = False,
    at: datetime | None = None,
) -> int:
    """One run of ``agent``: completed (``ok``) or failed; ``critical`` adds a tool call with a
    forbidden side effect (a critical finding at any tier; the run has no grant, so below T2 it
    is also outside the grants), ``warning`` a low-confidence EXECUTE. Returns its last seq."""
    a = {"agent": agent, "run": name}
    ev.add("run.submitted", objective="o", user="u", risk="low", auto_approve=True, at=at, **a)
    ev.add("run.approved", approver="x", mode="auto", plan_digest=DIGEST, **a)
    ev.add("run.started", **a)
    if critical:
        ev.add("tool.called", tool="t", args_digest=DIGEST, side_effect="payment", **a)
    if warning:
        ev.add("decision.recorded", decision="EXECUTE", confidence_bp=10, rationale="r", **a)
    if ok:
        return ev.add("run.completed", steps_completed=1, **a).seq
    return ev.add("run.failed", failure_class="unknown", message="m", **a).seq


def record(
    ev: Events, due: Due, *, approved: bool = True, at: datetime | None = None, **changes: Any
) -> int:
    """Record ``due`` as its ``tier.*`` event (``changes`` overrides payload fields)."""
    payload = {**due.payload(approved=approved), **changes}
    return ev.add(f"tier.{due.change}", agent=due.agent, at=at, **payload).seq


def fold(ev: Events, db: ReadModels | None = None, to_seq: int | None = None) -> ReadModels:
    db = db if db is not None else memory()
    catch_up(ev, db, to_seq=to_seq)
    return db


def due_of(ev: Events, agent: str = "a1", to_seq: int | None = None) -> Due | None:
    found = [d for d in compute_due(fold(ev, to_seq=to_seq)) if d.agent == agent]
    return found[0] if found else None


def assessment(ev: Events, agent: str = "a1") -> Assessment:
    (a,) = assess_all(fold(ev), agent=agent)
    return a
