"""The PostgreSQL store's appends cost two round trips, counted on the wire.

libpq's own protocol trace (``PQtrace``) of the store's connection records every message the
client sends (``F``) and receives (``B``); a round trip is a run of client messages answered
by a run of server messages. Nothing is mocked: a real server, real keys, the store's real
connection. Skipped like ``tests/test_postgres.py`` when no server is reachable.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ledger.crypto.keyfiles import KeyRing
from ledger.errors import DuplicateEventId
from ledger.event.drafts import Draft, Prepared, prepare
from ledger.store.postgres import PgLedger
from tests.test_postgres import ready

__all__ = ["ready"]
"""``ready`` (``tests/test_postgres.py``): a database of its own (``conftest.pg_url``), a ledger
and a recorder key."""

psycopg = pytest.importorskip("psycopg")


class Wire:
    """The protocol messages of one traced stretch, as libpq wrote them."""

    def __init__(self, text: str) -> None:
        self.lines = [line.split("\t") for line in text.splitlines() if line.strip()]

    def round_trips(self) -> int:
        """Client-to-server turns: each run of ``F`` messages that the server then answers."""
        turns, last = 0, "B"
        for direction, *_ in self.lines:
            if direction == "F" and last == "B":
                turns += 1
            last = direction
        return turns

    def sent(self) -> list[str]:
        """The kinds of message the client sent (``Query``, ``Parse``, ``Sync``, …)."""
        return [line[2] for line in self.lines if line[0] == "F"]

    def queries(self) -> list[str]:
        return [line[3].strip() for line in self.lines if line[0] == "F" and line[2] == "Query"]


@contextmanager
def traced(ledger: PgLedger) -> Iterator[list[Wire]]:
    """Trace the ledger's connection for the ``with`` body; the result's one ``Wire`` after."""
    out: list[Wire] = []
    pgconn = ledger._conn.pgconn
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as f:
        pgconn.trace(f.fileno())
        pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
        try:
            yield out
        finally:
            pgconn.untrace()
        f.seek(0)
        out.append(Wire(f.read()))


def test_a_single_append_is_two_round_trips(ready: tuple[str, Path]) -> None:
    url, keys = ready
    signer = KeyRing(keys).load("rec")
    with PgLedger.open(url) as ledger:
        ledger.append(Draft("x.note", {"n": 0}), signer=signer)  # reads the log's tip once
        for n in range(1, 12):  # across stored Merkle nodes and the head's moves
            with traced(ledger) as wire:
                event = ledger.append(Draft("x.note", {"n": n}), signer=signer)
            assert wire[0].round_trips() == 2, wire[0].lines
            # Simple queries only: BEGIN with the head lock, then the writes with COMMIT.
            assert wire[0].sent() == ["Query", "Query"]
            first, second = wire[0].queries()
            assert first.startswith('"BEGIN;') and "gl_lock_head()" in first
            assert "INSERT INTO events" in second and second.endswith('COMMIT"')
            assert event.seq == n + 3
        assert ledger.size == 14


def test_a_batch_of_100_is_two_round_trips(ready: tuple[str, Path]) -> None:
    url, keys = ready
    signer = KeyRing(keys).load("rec")
    with PgLedger.open(url) as ledger:
        ledger.append(Draft("x.note", {"n": 0}), signer=signer)
        with traced(ledger) as wire:
            events = ledger.append_many(
                [Draft("x.note", {"n": n}) for n in range(100)], signer=signer
            )
        assert [e.seq for e in events] == list(range(4, 104))
        assert wire[0].round_trips() == 2
        assert len(wire[0].queries()[1].split("INSERT INTO events")) == 2  # one INSERT


def test_after_another_writer_the_tip_is_read_again(ready: tuple[str, Path]) -> None:
    """When the head moved since this connection's last append, the log's tip (the Merkle
    frontier) is read again, inside the transaction: the append is correct, at the cost of
    those reads; the next one is back to two round trips."""
    url, keys = ready
    signer = KeyRing(keys).load("rec")
    with PgLedger.open(url) as ours, PgLedger.open(url) as theirs:
        ours.append(Draft("x.note", {"n": 0}), signer=signer)
        theirs.append(Draft("x.note", {"n": 1}), signer=signer)
        with traced(ours) as wire:
            event = ours.append(Draft("x.note", {"n": 2}), signer=signer)
        assert event.seq == 5
        assert wire[0].round_trips() > 2
        with traced(ours) as wire:
            assert ours.append(Draft("x.note", {"n": 3}), signer=signer).seq == 6
        assert wire[-1].round_trips() == 2
    from ledger.verify.verifier import verify_ledger

    with PgLedger.open(url) as ledger:
        assert verify_ledger(ledger).ok


def test_reads_inside_a_write_see_its_held_writes(ready: tuple[str, Path]) -> None:
    """Writes are held back until COMMIT; a read inside the same transaction (the duplicate
    id check here) first sends them, so it sees the transaction's own rows."""
    url, keys = ready
    signer = KeyRing(keys).load("rec")
    with PgLedger.open(url) as ledger:
        with pytest.raises(DuplicateEventId, match="already in the log at seq 3"), ledger.write():
            ledger.append_locked([prepare(Draft("x.note", {}, id="once"))], signer)
            ledger.append_locked([Prepared(Draft("x.note", {}, id="once"), None, "line 2")], signer)
        assert ledger.size == 2
        with pytest.raises(RuntimeError), ledger.write():
            ledger.append_locked([prepare(Draft("x.note", {"n": 1}))], signer)
            assert ledger.size == 3  # read through the connection, inside the transaction
            raise RuntimeError("abandoned")
        assert ledger.size == 2
        assert ledger.append(Draft("x.note", {}, id="once"), signer=signer).seq == 3
