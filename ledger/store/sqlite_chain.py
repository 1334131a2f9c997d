"""``chaining.ChainStore`` over a SQLite ``Ledger``'s open write transaction: how rows signed
elsewhere (``govledger copy``) are written to a SQLite file after checking that they extend it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ledger.event.canonical import loads
from ledger.event.framing import ROW_COLUMNS, ROW_FIELDS
from ledger.store.tip import KeyState, Tip

if TYPE_CHECKING:
    from ledger.store.sqlite import Ledger

_INSERT = f"INSERT INTO events ({ROW_COLUMNS}) VALUES ({', '.join('?' * len(ROW_FIELDS))})"
_KEY_FIELDS = ("key_id", "name", "role", "agent", "revoked_seq")


class SqliteChain:
    """The store side of ``chaining`` for this thread's connection to a ``Ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn
        self.session = ledger._session()

    def current_tip(self) -> Tip:
        return self.session.staged or self.ledger._read_tip()

    def stage_tip(self, tip: Tip) -> None:
        self.session.staged = tip

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
        if nodes:
            self.conn.executemany(
                "INSERT INTO merkle_nodes (closes, level, hash) VALUES (?, ?, ?)", nodes
            )
        if new_keys:
            self.conn.executemany(
                "INSERT INTO keys (key_id, name, public_key, role, agent, registered_seq) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                new_keys,
            )
        if revoked:
            self.conn.executemany("UPDATE keys SET revoked_seq = ? WHERE key_id = ?", revoked)

    def insert_events(self, rows: list[list[Any]], bodies: list[bytes]) -> None:
        self.conn.executemany(_INSERT, rows)
