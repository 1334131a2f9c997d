"""Building the demo ledger: the library side of `govledger demo` (no click here).

Everything goes through the public library, exactly as a user's code would: the ledger and
keys, a `policy.set`, the synthetic workload of ``ledger.sample`` appended in batches, `tiers
apply` after each round of it (a governor's periodic job), and a signed checkpoint.

The story needs a cast: the first three agents are a careful one (never breaks a rule, starts
at T0 and climbs), a sloppy one (warnings but nothing critical, starts at T2 and is demoted) and
a reckless one (critical violations, starts at T1 and is revoked); the others are ordinary
(a slip now and then: half the generator's default warnings, a quarter of its critical ones).
The demo policy asks for less than the shipped default (no minimum time at a tier, no
cooldown, since the whole demo happens within seconds of log time) so that all of this shows
up in a few thousand events.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledger.app.governance import apply_changes, read_models, set_policy
from ledger.crypto.keyfiles import KeyRing
from ledger.errors import InputError
from ledger.event.envelope import Event
from ledger.sample import GOVERNOR, RECORDER, Conduct, append_stream, generate_drafts
from ledger.store import create_store, is_postgres_url
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from ledger.tlog.proofs import sign_current_checkpoint
from projections.corrections.queries import patterns
from projections.policy.document import default_document
from projections.runs.queries import findings, list_runs
from projections.tiers.queries import agents as tier_agents
from projections.tiers.queries import tier_json
from projections.tiers.rules import Due

BATCH = 1000
ROUNDS = 10
"""Rounds of workload; the governor runs `tiers apply` after each."""
MIN_EVENTS = 2000
"""Fewer events than this leave too few runs per agent for the story."""

CAST: tuple[tuple[str, Conduct], ...] = (
    ("careful", Conduct(warnings=0, critical=0, failures=0.3, tier=0, weight=3.0)),
    ("sloppy", Conduct(warnings=6, critical=0, tier=2, weight=2.0)),
    ("reckless", Conduct(warnings=0, critical=5, tier=1, weight=1.5)),
)
"""The demo's leading agents, in registration order: character and conduct."""
EXTRA = ("ordinary", Conduct(warnings=0.5, critical=0.25, weight=1.0))
"""Every agent after the cast."""


def demo_policy() -> dict[str, Any]:
    """The default policy with low bars and no time at a tier, for a demo of seconds."""
    doc = copy.deepcopy(default_document())
    doc["cooldown_seconds"] = 0
    doc["human_approval_from_tier"] = 3
    bars = {"T1": (3, 3, 3000), "T2": (8, 4, 3000), "T3": (14, 5, 2500), "T4": (22, 6, 2000)}
    for tier, (runs, streak, rate) in bars.items():
        doc["promotion"][tier] = {
            "min_compliant_runs": runs,
            "min_streak": streak,
            "max_violation_rate_bp": rate,
            "window_runs": 10,
            "min_seconds_at_tier": 0,
        }
    doc["demotion"] = {"window_runs": 10, "max_violations": 4, "by": 1}
    return doc


def cast(n_agents: int) -> list[tuple[str, Conduct]]:
    """Character and conduct of each of ``n_agents`` agents, in registration order."""
    return [*CAST, *[EXTRA] * max(0, n_agents - len(CAST))][:n_agents]


@dataclass
class DemoResult:
    """What the tour shows."""

    origin: str
    size: int
    root_key_id: str
    characters: dict[str, str] = field(default_factory=dict)
    """Agent → its character in the story (careful, sloppy, reckless, ordinary)."""
    tier_events: list[Event] = field(default_factory=list)
    approved: list[Event] = field(default_factory=list)
    """Promotions recorded with a governor's explicit approval (``--approve``)."""
    awaiting: list[Due] = field(default_factory=list)
    """Promotions due at the end that await a human decision (the careful agent's first)."""
    runs: int = 0
    non_compliant: int = 0
    patterns: int = 0
    tiers: list[dict[str, Any]] = field(default_factory=list)
    example_run: str | None = None
    """The run whose critical finding led to the first revocation (else a non-compliant run)."""
    example_run_cost: str | None = None
    """The agent revoked for ``example_run`` (None: no revocation)."""

    def agent_with(self, change: str) -> str | None:
        """The first agent with a ``tier.<change>`` event, preferring the cast's."""
        named = [e.agent for e in self.tier_events if e.type == f"tier.{change}" and e.agent]
        cast = [a for a in named if self.characters.get(a) != EXTRA[0]]
        return next(iter(cast or named), None)


def _first_awaiting(awaiting: list[Due], characters: dict[str, str]) -> Due:
    """The promotion a governor looks at first: the careful agent's, else the first."""
    return next((d for d in awaiting if characters.get(d.agent) == CAST[0][0]), awaiting[0])


def _approved(event: Event) -> bool:
    """Whether ``event`` is a promotion recorded with a human governor's approval."""
    return event.type == "tier.promoted" and event.payload["evidence"].get("human_approval") is True


def _rounds(events: int) -> Iterator[int]:
    """Events per round: ``ROUNDS`` nearly equal shares of ``events``."""
    for i in range(ROUNDS):
        yield events * (i + 1) // ROUNDS - events * i // ROUNDS


def beside(db: str, suffix: str) -> Path:
    """A file kept beside the demo's ledger: ``suffix`` in place of a SQLite file's own, or
    appended to a PostgreSQL database's name (in the working directory)."""
    if is_postgres_url(db):
        name = urlsplit(db).path.strip("/") or "govledger"
        return Path(f"{name}{suffix}")
    return Path(db).with_suffix(suffix)


def build_demo(
    db: str, ring: KeyRing, *, origin: str, events: int, agents: int, seed: int
) -> DemoResult:
    """Create the demo ledger at ``db`` and return what the tour shows.

    (1) keys and ledger, the recorder key registered, the demo policy set; (2) each round of
    the workload, then the tier changes it made due; the first promotion that needs a human
    decision is approved in the round after it appears, later ones are left awaiting; (3) a
    signed checkpoint, saved next to ``db``; (4) the read models queried for the tour.
    """
    if events < MIN_EVENTS:
        raise InputError(f"the demo needs at least {MIN_EVENTS} events, not {events}")
    # (1)
    root = ring.load_or_create("root")
    recorder = ring.load_or_create("recorder")
    # NORMAL: a sample ledger need not survive a power cut, and FULL would sync each of the
    # thousand-odd transactions (the roles alternate at every approval and grant).
    ledger = (
        create_store(db, origin=origin, root=root)
        if is_postgres_url(db)
        else Ledger.create(db, origin=origin, root=root, synchronous="NORMAL")
    )
    with ledger:
        ledger.append(Draft("key.registered", root_key_payload(recorder, RECORDER)), signer=root)
        set_policy(ledger, demo_policy(), root)
        signers = {GOVERNOR: root, RECORDER: recorder}
        roles = cast(agents)
        # The agents' effective tiers, as the read models have them after each round: the
        # workload starts low-risk runs without a governor once an agent's tier allows it.
        tiers: dict[str, int] = {}
        stream = generate_drafts(events, agents, seed, conduct=[c for _, c in roles], tiers=tiers)
        result = DemoResult(origin=origin, size=0, root_key_id=root.key_id)
        # (2) The first drafts are the registrations, in cast order. A governor looks at the
        # promotions awaiting a decision after one round and approves the first in the next.
        approve: set[str] = set()
        for share in _rounds(events):
            drafts = list(itertools.islice(stream, share))
            for _, d in drafts:
                if d.type == "agent.registered" and d.agent not in result.characters:
                    result.characters[str(d.agent)] = roles[len(result.characters)][0]
            append_stream(ledger, drafts, signers, BATCH)
            applied = apply_changes(ledger, root, approve=approve)
            result.tier_events += applied.recorded
            result.approved += [e for e in applied.recorded if _approved(e)]
            result.awaiting = applied.awaiting
            with read_models(ledger) as rm:
                tiers.update((a.agent, a.effective_tier) for a in tier_agents(rm))
            approve = set()
            if applied.awaiting and not result.approved:
                approve = {_first_awaiting(applied.awaiting, result.characters).agent}
        if result.awaiting:
            first = _first_awaiting(result.awaiting, result.characters)
            result.awaiting = [first, *[d for d in result.awaiting if d is not first]]
        # (3)
        note = sign_current_checkpoint(ledger, root)
        beside(db, ".checkpoint").write_text(note, encoding="utf-8")
        result.size = ledger.size
        # (4)
        with read_models(ledger) as rm:
            runs = list_runs(rm)
            bad = list_runs(rm, non_compliant=True)
            result.runs, result.non_compliant = len(runs), len(bad)
            result.patterns = len(patterns(rm))
            result.tiers = [tier_json(a) for a in tier_agents(rm)]
            result.example_run = next((r.run for r in bad), None)
            revoked = next((e for e in result.tier_events if e.type == "tier.revoked"), None)
            if revoked is not None:
                crit = revoked.payload["evidence"]["critical_seq"]
                cause = [f.run for f in findings(rm, from_seq=crit, to_seq=crit) if f.run]
                if cause:
                    result.example_run, result.example_run_cost = cause[0], revoked.agent
    return result
