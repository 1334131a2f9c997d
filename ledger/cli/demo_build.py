"""Building the demo ledger: the library side of `govledger demo` (no click here).

Everything goes through the public library, exactly as a user's code would: the ledger and
keys, a `policy.set`, the synthetic workload appended in batches, `tiers apply` after each of
two phases, and a signed checkpoint. The demo policy asks for less than the shipped default
(no minimum time at a tier, since the whole demo happens within seconds of log time) so that
promotions, demotions and revocations all show up in a few thousand events.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.events import Event
from ledger.keys import KeyRing, Signer
from ledger.proofs import sign_current_checkpoint
from ledger.sample import GOVERNOR, generate_drafts
from ledger.store import Draft, Ledger, root_key_payload
from projections.correction_queries import patterns
from projections.policy import default_document
from projections.queries import list_runs
from projections.tier_ops import apply_changes, read_models, set_policy
from projections.tier_queries import agents as tier_agents
from projections.tier_queries import tier_json

BATCH = 1000


def demo_policy() -> dict[str, Any]:
    """The default policy with low bars and no time at a tier, for a demo of seconds."""
    doc = copy.deepcopy(default_document())
    doc["cooldown_seconds"] = 0
    doc["human_approval_from_tier"] = 3
    bars = {"T1": (2, 2, 5000), "T2": (4, 3, 4000), "T3": (8, 4, 3000), "T4": (14, 6, 2000)}
    for tier, (runs, streak, rate) in bars.items():
        doc["promotion"][tier] = {"min_compliant_runs": runs, "min_streak": streak,
                                  "max_violation_rate_bp": rate, "window_runs": 10,
                                  "min_seconds_at_tier": 0}  # fmt: skip
    doc["demotion"] = {"window_runs": 6, "max_violations": 1, "by": 1}
    return doc


@dataclass
class DemoResult:
    origin: str
    size: int
    root_key_id: str
    tier_events: list[Event] = field(default_factory=list)
    awaiting: int = 0
    runs: int = 0
    non_compliant: int = 0
    patterns: int = 0
    tiers: list[dict[str, Any]] = field(default_factory=list)
    example_run: str | None = None
    example_agent: str | None = None


def _load_or_create(ring: KeyRing, name: str) -> Signer:
    return ring.load(name) if ring.exists(name) else ring.create(name)


def _append(ledger: Ledger, stream: Iterable[tuple[str, Draft]], signers: dict[str, Signer]) -> None:
    """Append (role, draft) pairs, one transaction per run of same-role drafts (≤ BATCH)."""
    pending: list[Draft] = []
    role = ""
    for r, d in stream:
        if pending and (r != role or len(pending) >= BATCH):
            ledger.append_many(pending, signer=signers[role])
            pending = []
        role = r
        pending.append(d)
    if pending:
        ledger.append_many(pending, signer=signers[role])


def build_demo(db: str, ring: KeyRing, *, origin: str, events: int, agents: int,
               seed: int) -> DemoResult:  # fmt: skip
    """Create the demo ledger at ``db`` and return what the tour shows."""
    root = _load_or_create(ring, "root")
    recorder = _load_or_create(ring, "recorder")
    ledger = Ledger.create(db, origin=origin, root=root)
    with ledger:
        ledger.append(Draft("key.registered", root_key_payload(recorder, "recorder")), signer=root)
        set_policy(ledger, demo_policy(), root)
        signers = {GOVERNOR: root, "recorder": recorder}
        stream = generate_drafts(events, agents, seed)
        result = DemoResult(origin=origin, size=0, root_key_id=root.key_id)
        # Phase 1, then the tier changes it earned; phase 2, then the changes again.
        for share in (events * 3 // 5, events - events * 3 // 5):
            _append(ledger, itertools.islice(stream, share), signers)
            first = apply_changes(ledger, root)
            result.tier_events += first.recorded
            result.awaiting = len(first.awaiting)
            if first.awaiting:  # a governor says yes to the first one, by name
                approved = apply_changes(ledger, root, approve={first.awaiting[0].agent})
                result.tier_events += approved.recorded
                result.awaiting = len(approved.awaiting)
        sign_current_checkpoint(ledger, root)
        note = ledger.conn.execute("SELECT note FROM checkpoints ORDER BY size DESC").fetchone()
        Path(db).with_suffix(".checkpoint").write_text(str(note[0]), encoding="utf-8")
        result.size = ledger.size
        with read_models(ledger) as rm:
            runs = list_runs(rm)
            bad = [r for r in list_runs(rm, non_compliant=True)]
            result.runs, result.non_compliant = len(runs), len(bad)
            result.example_run = bad[0].run if bad else (runs[0].run if runs else None)
            result.patterns = len(patterns(rm))
            result.tiers = [tier_json(a) for a in tier_agents(rm)]
        changed = [e.agent for e in result.tier_events if e.agent]
        result.example_agent = changed[0] if changed else None
    return result
