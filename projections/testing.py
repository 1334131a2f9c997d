"""Helpers to fold hand-built event sequences without a store: for tests of projections.

``Events`` builds unsigned but well-formed ``Event`` objects (real ``prev``/``hash`` chain, a
dummy key and signature) and is itself an ``EventSource`` for the replay driver, so a test can
write the offending sequence of a governance check in a few lines and fold it in memory::

    ev = Events()
    ev.add("agent.registered", agent="a1", **contract())
    ev.add("run.submitted", agent="a1", run="r1", ...)
    db = replay(ev)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.event.canonical import canonical
from ledger.event.envelope import ZERO_HASH, Event, decode_payload, format_ts
from ledger.event.rows import EventRow
from ledger.store import sqlite_read_models
from ledger.store.base import ReadModels
from projections.driver import catch_up

DIGEST = "ab" * 32
START = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


class Events:
    """A growing list of events, one second apart from ``START``; an ``EventSource``."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(seconds=1)) -> None:
        self.events: list[Event] = []
        self._t = start
        self._step = step

    def add(
        self,
        type: str,
        *,
        agent: str | None = None,
        run: str | None = None,
        actor: str | None = None,
        at: datetime | None = None,
        payload: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Event:
        """Append one event (its payload is validated as the store would); return it.

        The payload is ``payload`` and/or the keyword ``fields`` (a trailing ``_`` is dropped,
        for ``from_``). Pass ``payload=`` when a field is named like an envelope argument
        (``key.registered`` has an ``agent`` field), e.g. when copying events of another log.
        """
        payload = {**(payload or {}), **{k.rstrip("_"): v for k, v in fields.items()}}
        decode_payload(type, payload)
        if at is not None:
            self._t = max(self._t, at)
        seq = len(self.events) + 1
        prev = self.events[-1].hash if self.events else ZERO_HASH
        ts = format_ts(self._t)
        body: dict[str, Any] = {
            "v": 1,
            "seq": seq,
            "id": f"e{seq}",
            "ts": ts,
            "type": type,
            "agent": agent,
            "run": run,
            "actor": actor,
            "payload": payload,
            "prev": prev,
            "key": "0" * 32,
        }
        h = hashlib.sha256(b"\x00" + canonical(body)).hexdigest()
        event = Event(seq, f"e{seq}", ts, type, agent, run, actor, payload, prev, "0" * 32, h, "")
        self.events.append(event)
        self._t += self._step
        return event

    def replay_events(self, *, from_seq: int = 1, to_seq: int | None = None) -> Iterator[EventRow]:
        """The events as the store's replay path gives them (``EventRow``, payload as JSON
        text; a test's deliberately bad payload is written as it is, not refused)."""
        stop = len(self.events) if to_seq is None else min(to_seq, len(self.events))
        for e in self.events[from_seq - 1 : stop]:
            text = json.dumps(e.payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            yield EventRow(e.seq, e.id, e.ts, e.type, e.agent, e.run, e.actor, text, e.key, e.hash)

    def head(self) -> tuple[int, str]:
        return (len(self.events), self.events[-1].hash if self.events else ZERO_HASH)

    def hash_at(self, seq: int) -> str:
        return self.events[seq - 1].hash

    def scratch_read_models(self) -> AbstractContextManager[ReadModels]:
        """A scratch SQLite database, as a SQLite ledger gives (the tests' one store)."""
        return sqlite_read_models.scratch()

    def prefix(self, n: int) -> Events:
        """A log holding only the first ``n`` events."""
        other = Events()
        other.events = self.events[:n]
        return other


def contract(
    *,
    tier: int = 2,
    allowed: tuple[str, ...] = ("read", "write"),
    forbidden: tuple[str, ...] = ("payment",),
    threshold_bp: int = 7000,
    version: str = "1",
) -> dict[str, Any]:
    """An ``agent.registered`` payload."""
    return {
        "owner": "team",
        "version": version,
        "initial_tier": tier,
        "allowed_side_effects": list(allowed),
        "forbidden_actions": list(forbidden),
        "confidence_threshold_bp": threshold_bp,
    }


def replay(
    source: Events, db: sqlite_read_models.SqliteReadModels | None = None, batch: int = 20_000
) -> sqlite_read_models.SqliteReadModels:
    """Fold ``source`` into ``db`` (default: a fresh in-memory SQLite database); return it."""
    db = db if db is not None else sqlite_read_models.memory()
    catch_up(source, db, batch=batch)
    return db
