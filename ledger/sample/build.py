"""The generated stream and a ledger built from it: ``generate_drafts``, ``build_ledger``, and
``govledger import`` lines (SPEC §5) for the recorder-signed part of a stream."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.sample.data import GOVERNOR, ORIGIN, RECORDER, Conduct
from ledger.sample.runs import World, Yield, make_agents, run_events
from ledger.store.sqlite import Draft, Ledger, root_key_payload


def generate_drafts(
    n_events: int,
    n_agents: int,
    seed: int,
    *,
    ids: bool = False,
    open_runs: int | None = None,
    violations: float = 1.0,
    conduct: Sequence[Conduct] | None = None,
) -> Iterator[tuple[str, Draft]]:
    """Yield exactly ``n_events`` ``(role, draft)`` pairs in log order (fewer never).

    ``role`` is ``"governor"`` or ``"recorder"``: the key that must sign the draft (SPEC §2.5).
    Agents are registered first; then runs of randomly chosen agents (a few agents are much
    busier than the rest) interleave, ``open_runs`` at a time (default ``min(2 × agents, 64)``).
    The stream stops after ``n_events``, leaving the runs still open in flight, as a live log
    would. With ``ids`` every draft gets a deterministic id ``gen-<seed>-<index>``.

    ``violations`` scales how often runs break rules (0: never, 1: about one run in seven);
    ``conduct`` gives each agent its own (one per agent, in registration order), also scaled
    by ``violations``. With neither, the stream for a seed is the same as it always was.
    """
    if n_agents < 1:
        raise ValueError("n_agents must be at least 1")
    if violations < 0:
        raise ValueError(f"violations must be at least 0, not {violations}")
    if conduct is not None and len(conduct) != n_agents:
        raise ValueError(f"conduct has {len(conduct)} entries for {n_agents} agents")
    rng = random.Random(seed)
    agents = make_agents(rng, [c.scaled(violations) for c in conduct or [Conduct()] * n_agents])
    world = World(rng, seed, agents, weights=[a.weight for a in agents])
    target = open_runs or min(2 * n_agents, 64)
    count = 0

    def out(item: Yield) -> Yield:
        if ids:
            role, d = item
            return role, Draft(d.type, d.payload, d.agent, d.run, d.actor, f"gen-{seed}-{count}")
        return item

    for agent in agents:
        if count >= n_events:
            return
        yield out(
            (
                GOVERNOR,
                Draft("agent.registered", agent.contract(), agent=agent.id, actor=agent.owner),
            )
        )
        count += 1
    running: list[Iterator[Yield]] = []
    while count < n_events:
        while len(running) < target:
            running.append(run_events(world, world.pick_agent()))
        i = rng.randrange(len(running))
        item = next(running[i], None)
        if item is None:
            running[i] = running[-1]
            running.pop()
            continue
        yield out(item)
        count += 1


def append_stream(
    ledger: Ledger,
    stream: Iterable[tuple[str, Draft]],
    signers: dict[str, Signer],
    batch: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Append ``(role, draft)`` pairs in order: consecutive drafts of one role go in one
    ``append_many`` (one transaction), flushed when the role changes or ``batch`` are pending.
    ``progress`` is told the size of each committed batch."""
    pending: list[Draft] = []
    role = ""
    for r, d in stream:
        if pending and (r != role or len(pending) >= batch):
            ledger.append_many(pending, signer=signers[role])
            if progress is not None:
                progress(len(pending))
            pending = []
        role = r
        pending.append(d)
    if pending:
        ledger.append_many(pending, signer=signers[role])
        if progress is not None:
            progress(len(pending))


def build_ledger(
    path: str | Path,
    keys_dir: str | Path,
    n_events: int,
    n_agents: int,
    seed: int,
    batch: int = 1000,
    progress: Callable[[int], None] | None = None,
    *,
    origin: str = ORIGIN,
    synchronous: str | None = None,
    drafts: Iterable[tuple[str, Draft]] | None = None,
) -> Ledger:
    """Create a ledger at ``path`` holding the generated workload and return it (open).

    The root key ``root`` (governor) and a ``recorder`` key are loaded from ``keys_dir`` or
    created there. Consecutive drafts of the same role are appended with one ``append_many``
    (one transaction), flushed when the role changes or ``batch`` drafts are pending.
    ``progress`` is called with the number of events of each committed batch. ``drafts``
    replaces the generated stream (e.g. a tee of it). ``n_events`` excludes the two setup
    events (``ledger.created``, ``key.registered``).
    """
    ring = KeyRing(keys_dir)
    root = ring.load_or_create("root")
    recorder = ring.load_or_create("recorder")
    ledger = Ledger.create(path, origin=origin, root=root, synchronous=synchronous)
    ledger.append(Draft("key.registered", root_key_payload(recorder, RECORDER)), signer=root)
    signers = {GOVERNOR: root, RECORDER: recorder}
    stream = drafts if drafts is not None else generate_drafts(n_events, n_agents, seed)
    append_stream(ledger, stream, signers, batch, progress)
    return ledger


def import_line(draft: Draft) -> str:
    """One ``govledger import`` line for ``draft`` (SPEC §5)."""
    obj = {
        "type": draft.type,
        "payload": draft.payload,
        "agent": draft.agent,
        "run": draft.run,
        "actor": draft.actor,
        "id": draft.id,
    }
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def write_jsonl(stream: Iterable[tuple[str, Draft]], out: TextIO) -> Iterator[tuple[str, Draft]]:
    """Pass ``stream`` through, writing its recorder-signed drafts as import lines to ``out``."""
    for role, draft in stream:
        if role == RECORDER:
            out.write(import_line(draft) + "\n")
        yield role, draft
