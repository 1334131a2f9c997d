"""Property: for generated workloads, ``tiers compute`` then ``tiers apply`` leave a log whose
fresh replay by a separate process reproduces exactly the recorded tier history, all justified;
and an unjustified ``tier.promoted`` injected anywhere is reported (recomputation as verification)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.app.governance import apply_due, read_models, set_policy
from ledger.crypto.keyfiles import KeyRing
from ledger.event.canonical import canonical
from ledger.event.envelope import ZERO_HASH, Event
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from projections.testing import Events, replay
from projections.tiers.queries import agents, assess_all, compute_due, history, tier_findings
from scripts.generate import GOVERNOR, generate_drafts
from tests.tiers_helpers import policy_doc

REPLAY = """
import json, sys
from ledger.store.sqlite import Ledger
from projections.driver import build_at
from projections.tiers.queries import history, tier_findings
ledger = Ledger.open(sys.argv[1])
with build_at(ledger, ledger.size) as db:
    print(json.dumps({"history": [h.as_json() for h in history(db)],
                      "findings": [f.as_json() for f in tier_findings(db)]}))
"""

policies = st.builds(
    lambda streak, runs, rate, human, d_max, d_by: policy_doc(
        cooldown_seconds=0,
        human_approval_from_tier=human,
        T1={
            "min_compliant_runs": runs,
            "min_streak": streak,
            "max_violation_rate_bp": rate,
            "window_runs": 5,
            "min_seconds_at_tier": 0,
        },
        T2={
            "min_compliant_runs": runs * 2,
            "min_streak": streak,
            "max_violation_rate_bp": rate,
            "window_runs": 10,
            "min_seconds_at_tier": 0,
        },
        T3={
            "min_compliant_runs": runs * 3,
            "min_streak": streak + 1,
            "max_violation_rate_bp": rate,
            "window_runs": 10,
            "min_seconds_at_tier": 0,
        },
        demotion={"window_runs": 5, "max_violations": d_max, "by": d_by},
    ),
    st.integers(0, 3),
    st.integers(0, 4),
    st.integers(2000, 10000),
    st.integers(2, 5),
    st.integers(0, 3),
    st.integers(1, 2),
)


def build(tmp: Path, doc: dict[str, Any], seed: int, n_agents: int, n_events: int,
          chunk: int) -> Ledger:  # fmt: skip
    """A ledger of the generated workload with ``tiers apply`` run after every ``chunk``."""
    ring = KeyRing(tmp / "keys")
    root, rec = ring.create("root"), ring.create("recorder")
    ledger = Ledger.create(tmp / "l.db", origin="t.example/log", root=root, synchronous="NORMAL")
    ledger.append(Draft("key.registered", root_key_payload(rec, "recorder")), signer=root)
    set_policy(ledger, doc, root)
    stream = list(generate_drafts(n_events, n_agents, seed))
    names = {d.agent for _, d in stream if d.agent is not None}
    for i in range(0, len(stream), chunk):
        part = stream[i : i + chunk]
        start = 0
        for j in range(1, len(part) + 1):  # consecutive drafts of one role: one transaction
            if j == len(part) or part[j][0] != part[start][0]:
                signer = root if part[start][0] == GOVERNOR else rec
                ledger.append_many([d for _, d in part[start:j]], signer=signer)
                start = j
        apply_due(ledger, root, approve=names if (i // chunk) % 2 else ())
    for _ in range(5):  # let every due change through, one tier per apply
        if not apply_due(ledger, root, approve=names):
            break
    return ledger


@settings(max_examples=6)
@given(policies, st.integers(0, 10**6), st.integers(1, 4), st.integers(150, 400),
       st.integers(15, 80))  # fmt: skip
def test_apply_then_fresh_replay_reproduces_the_recorded_history(
    doc: dict[str, Any], seed: int, n_agents: int, n_events: int, chunk: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = build(Path(tmp), doc, seed, n_agents, n_events, chunk)
        recorded = [(e.seq, e.agent, e.type.split(".")[1], e.payload["from"], e.payload["to"])
                    for e in ledger.iter_events() if e.type.startswith("tier.")]  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", REPLAY, ledger.path],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).parents[1],
        )
        fresh = json.loads(out.stdout)
        changes = [(h["seq"], h["agent"], h["change"], h["from"], h["to"])
                   for h in fresh["history"] if h["change"] != "registered"]  # fmt: skip
        assert changes == recorded
        assert fresh["findings"] == []
        assert all(h["justified"] for h in fresh["history"])
        with read_models(ledger) as db:
            assert [h.as_json() for h in history(db)] == fresh["history"]
            assert compute_due(db) == []
        ledger.close()


def _add(ev: Events, e: Event) -> None:
    """Re-add a recorded event (any payload, even one with an ``agent`` field) to ``ev``."""
    seq = len(ev.events) + 1
    prev = ev.events[-1].hash if ev.events else ZERO_HASH
    body = {**e.body(), "seq": seq, "id": f"e{seq}", "prev": prev, "key": "0" * 32}
    h = hashlib.sha256(b"\x00" + canonical(body)).hexdigest()
    ev.events.append(Event(seq, f"e{seq}", e.ts, e.type, e.agent, e.run, e.actor, e.payload,
                           prev, "0" * 32, h, ""))  # fmt: skip


def _copy_with(events: list[Event], at: int, inject: dict[str, Any]) -> tuple[Events, int]:
    """The log with one event injected after the first ``at`` events; its seq."""
    ev, seq = Events(), 0
    for i, e in enumerate([*events, None]):
        if i == at:
            ts = events[min(at, len(events) - 1)].ts
            seq = ev.add("tier.promoted", agent=inject.pop("agent"), at=_time(ts), **inject).seq
        if e is not None:
            _add(ev, e)
    return ev, seq


def _time(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@settings(max_examples=10)
@given(st.integers(0, 10**6), st.integers(1, 3), st.data())
def test_an_unjustified_promotion_injected_anywhere_is_reported(
    seed: int, n_agents: int, data: st.DataObject
) -> None:
    doc = policy_doc(cooldown_seconds=0, human_approval_from_tier=5,
                     T1={"min_compliant_runs": 2, "min_streak": 1, "max_violation_rate_bp": 5000,
                         "window_runs": 5, "min_seconds_at_tier": 0})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        ledger = build(Path(tmp), doc, seed, n_agents, 200, 40)
        events = list(ledger.iter_events())
        ledger.close()
    first_agent = next(i for i, e in enumerate(events) if e.type == "agent.registered") + 1
    at = data.draw(st.integers(first_agent, len(events)), label="inject after")
    prefix = Events()
    prefix.events = events[:at]
    db = replay(prefix)
    name = data.draw(st.sampled_from([a.agent for a in agents(db)]), label="agent")
    (a,) = assess_all(db, agent=name)
    tier = a.agent.tier
    to = tier + 2 if a.due is not None and a.due.change == "promoted" else tier + 1
    assume(to <= 4)
    pol = db.execute("SELECT version, digest FROM tier_policies ORDER BY seq DESC").fetchone()
    injected, seq = _copy_with(events, at, {
        "agent": name, "from": tier, "to": to, "reason": "injected", "policy_version": pol[0],
        "policy_digest": pol[1], "evidence": {"seq_from": 0, "seq_to": at}})  # fmt: skip
    found = [f for f in tier_findings(replay(injected)) if f.seq == seq]
    assert [f.kind for f in found] == ["unjustified_tier_change"]
