"""The SQLite side of the write path: the ``ChainStore`` of a ``Ledger``'s open transaction.

``append_locked`` is called by ``Ledger.append_many`` with ``BEGIN IMMEDIATE`` already held, so
the head read here cannot move until COMMIT. Authorizing, chaining and signing are shared with
the other stores (``ledger.store.chaining``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ledger.crypto.keyfiles import Signer
from ledger.event.canonical import loads
from ledger.event.drafts import Prepared
from ledger.event.envelope import ZERO_HASH, Event
from ledger.event.framing import ROW_COLUMNS, ROW_FIELDS
from ledger.store import chaining
from ledger.store.chaining import KeyState, Tip, now_ts, uuid7s
from ledger.tlog import merkle

if TYPE_CHECKING:
    from ledger.store.sqlite import Ledger

__all__ = ["KeyState", "SqliteChain", "Tip", "append_locked", "now_ts", "read_tip", "uuid7s"]

_INSERT = f"INSERT INTO events ({ROW_COLUMNS}) VALUES ({', '.join('?' * len(ROW_FIELDS))})"
_KEY_FIELDS = ("key_id", "name", "role", "agent", "revoked_seq")


def read_tip(ledger: Ledger) -> Tip:
    """The tip from the file: the last event and the frontier's nodes (two queries)."""
    row = ledger.conn.execute(
        "SELECT seq, hash, ts FROM events ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    size, prev, ts = (0, ZERO_HASH, "") if row is None else (row[0], row[1], row[2])
    frontier = ledger.get_nodes(merkle.range_nodes(0, size))
    return Tip(size, prev, ts, frontier, {})


class SqliteChain:
    """``chaining.ChainStore`` over this thread's connection to a ``Ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn

    def current_tip(self) -> Tip:
        return self.ledger.tip() or read_tip(self.ledger)

    def stage_tip(self, tip: Tip) -> None:
        self.ledger.stage_tip(tip)

    def key_state(self, kid: str) -> KeyState | None:
        row = self.conn.execute(
            "SELECT key_id, name, role, agent, revoked_seq FROM keys WHERE key_id = ?", (kid,)
        ).fetchone()
        return None if row is None else dict(zip(_KEY_FIELDS, row, strict=True))

    def key_ids_named(self, name: str) -> list[str]:
        rows = self.conn.execute("SELECT key_id FROM keys WHERE name = ?", (name,)).fetchall()
        return [r[0] for r in rows]

    def governor_key_ids(self) -> list[str]:
        rows = self.conn.execute("SELECT key_id FROM keys WHERE role = 'governor'").fetchall()
        return [r[0] for r in rows]

    def last_policy_version(self) -> int:
        last = self.conn.execute(
            "SELECT payload FROM events WHERE type = 'policy.set' ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return 0 if last is None else int(loads(last[0])["version"])

    def first_logged_id(self, ids: Sequence[str]) -> tuple[str, int] | None:
        marks = ",".join("?" * len(ids))
        hit = self.conn.execute(
            f"SELECT id, seq FROM events WHERE id IN ({marks}) ORDER BY seq LIMIT 1", list(ids)
        ).fetchone()
        return None if hit is None else (str(hit[0]), int(hit[1]))

    def write_index(
        self,
        nodes: list[tuple[int, int, bytes]],
        new_keys: list[tuple[Any, ...]],
        revoked: list[tuple[int, str]],
    ) -> None:
        conn = self.conn
        if nodes:
            conn.executemany(
                "INSERT INTO merkle_nodes (closes, level, hash) VALUES (?, ?, ?)", nodes
            )
        if new_keys:
            conn.executemany(
                "INSERT INTO keys (key_id, name, public_key, role, agent, registered_seq) VALUES (?, ?, ?, ?, ?, ?)",
                new_keys,
            )
        if revoked:
            conn.executemany("UPDATE keys SET revoked_seq = ? WHERE key_id = ?", revoked)

    def insert_events(self, rows: list[list[Any]], bodies: list[bytes]) -> None:
        self.conn.executemany(_INSERT, rows)


def append_locked(
    ledger: Ledger,
    prepared: list[Prepared],
    signer: Signer,
    progress: Callable[[int], None] | None,
) -> list[Event]:
    """Append ``prepared`` inside ``ledger``'s open write transaction (``chaining.append_locked``)."""
    return chaining.append_locked(SqliteChain(ledger), prepared, signer, progress)
