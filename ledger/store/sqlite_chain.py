"""``chaining.ChainStore`` over a SQLite ``Ledger``'s open write transaction: where the shared
write path (``ledger.store.chaining``) reads the tip and the key index of a SQLite file and
writes its rows, for appends and for rows copied from another store (``govledger copy``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ledger.event.framing import ROW_COLUMNS, ROW_FIELDS
from ledger.store.chaining import IndexLookups
from ledger.store.tip import Tip

if TYPE_CHECKING:
    from ledger.store.sqlite import Ledger

_INSERT = f"INSERT INTO events ({ROW_COLUMNS}) VALUES ({', '.join('?' * len(ROW_FIELDS))})"


class SqliteChain(IndexLookups):
    """The store side of ``chaining`` for this thread's connection to a ``Ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.conn = ledger.conn
        self.session = ledger._session()

    def current_tip(self) -> Tip:
        return self.session.staged or self.ledger._read_tip()

    def stage_tip(self, tip: Tip) -> None:
        self.session.staged = tip

    def first_logged_id(self, ids: Sequence[str]) -> tuple[str, int] | None:
        marks = ",".join("?" * len(ids))
        hit = self.conn.execute(
            f"SELECT id, seq FROM events WHERE id IN ({marks}) ORDER BY seq LIMIT 1", list(ids)
        ).fetchone()
        return None if hit is None else (str(hit[0]), int(hit[1]))

    def query(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, params)

    def query_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def insert_events(self, rows: list[list[Any]], bodies: list[bytes]) -> None:
        self.conn.executemany(_INSERT, rows)
