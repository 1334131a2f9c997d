"""The read-model tables in SQLite: the ``ledger.store.base.ReadModels`` of a SQLite ledger
file (the same connection as its log, so a write transaction covers both), and the scratch
databases of time travel and tests.

The only place read models meet ``sqlite3`` and ``sqlite_utils``: SQLite's own syntax (``INSERT
OR REPLACE``, savepoints, ``PRAGMA``) stays here; the projections' queries are standard SQL.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import DatabaseLocked, StoreError
from ledger.store.base import TableSpec

if TYPE_CHECKING:
    import sqlite_utils


class SqliteReadModels:
    """``ReadModels`` over one SQLite connection (``ledger.store.base.ReadModels``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._db: sqlite_utils.Database | None = None
        self._insert_sql: dict[tuple[str, tuple[tuple[str, type], ...], bool], str] = {}

    @property
    def sqlite(self) -> sqlite_utils.Database:
        """The connection as a ``sqlite_utils.Database`` (SQLite-specific callers: tests, tools)."""
        if self._db is None:
            # Imported here: only creating tables needs it, and a reading command that finds
            # its read models current never does (the import is a fifth of its start-up).
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    @property
    def path(self) -> str:
        """The file of the main database ("" for an in-memory one)."""
        for _, name, file in self.conn.execute("PRAGMA database_list").fetchall():
            if name == "main":
                return str(file)
        return ""  # pragma: no cover

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def exists(self, table: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        return row is not None

    def columns(self, table: str) -> tuple[str, ...]:
        return tuple(r[1] for r in self.conn.execute(f'PRAGMA main.table_info("{table}")'))

    def create(self, table: TableSpec) -> None:
        db = self.sqlite
        db[table.name].drop(ignore=True)
        pk: str | tuple[str, ...] = table.pk[0] if len(table.pk) == 1 else table.pk
        db[table.name].create(dict(table.columns), pk=pk, not_null=set(table.pk))  # type: ignore[union-attr]
        for cols in table.indexes:
            db[table.name].create_index(  # type: ignore[union-attr]
                list(cols), index_name=f"idx_{table.name}_{'_'.join(cols)}"
            )

    def drop(self, table: str) -> None:
        self.sqlite[table].drop(ignore=True)

    def insert(
        self, table: TableSpec, rows: Iterable[Sequence[Any]], *, replace: bool = False
    ) -> None:
        key = (table.name, table.columns, replace)
        sql = self._insert_sql.get(key)
        if sql is None:
            sql = self._insert_sql[key] = insert_sql(table, replace)
        self.conn.executemany(sql, rows)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction of read-model writes (a savepoint inside the caller's, if it has one).

        A transaction of its own is committed without waiting for the disk (``synchronous =
        NORMAL`` for its commit only): read models are derived data, and a commit lost to a power
        failure only leaves the tables and their ``projection_meta`` row at an earlier batch, from
        which the next reading command catches up. WAL keeps commits in order, so an event append
        committed later (``FULL``) makes everything before it durable too. Inside the caller's
        transaction (``tiers apply`` records events in it) nothing changes."""
        conn = self.conn
        nested = conn.in_transaction
        relaxed = None if nested else _relax_sync(conn)
        try:
            try:
                conn.execute("SAVEPOINT projections" if nested else "BEGIN IMMEDIATE")
                yield
            except sqlite3.OperationalError as e:
                _rollback(conn, nested)
                if "locked" in str(e) or "busy" in str(e):
                    raise DatabaseLocked(f"read models: database is locked ({e})") from e
                raise StoreError(f"read models: cannot update the stored tables ({e})") from e
            except BaseException:
                _rollback(conn, nested)
                raise
            if nested:
                conn.execute("RELEASE projections")
            else:
                conn.commit()
        finally:
            if relaxed is not None:
                conn.execute(f"PRAGMA synchronous = {relaxed}")

    def commit(self) -> None:
        """Commit an open transaction of this connection (before ``ATTACH``, which needs none)."""
        if self.conn.in_transaction:
            self.conn.commit()

    @contextmanager
    def attached(self, other: SqliteReadModels, schema: str) -> Iterator[None]:
        """``other``'s database attached as ``schema`` for cross-database queries."""
        self.commit()
        self.conn.execute("ATTACH DATABASE ? AS " + schema, [other.path])
        try:
            yield
        finally:
            self.conn.execute("DETACH DATABASE " + schema)

    def close(self) -> None:
        self.conn.close()


def insert_sql(table: TableSpec, replace: bool = False) -> str:
    """``INSERT [OR REPLACE] INTO name (cols) VALUES (?, ...)`` for ``executemany``."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    cols = ", ".join(f'"{c}"' for c, _ in table.columns)
    marks = ", ".join("?" for _ in table.columns)
    return f'{verb} INTO "{table.name}" ({cols}) VALUES ({marks})'


def _relax_sync(conn: sqlite3.Connection) -> int | None:
    """Set ``synchronous = NORMAL`` when it is stricter; return the level to restore."""
    level = int(conn.execute("PRAGMA synchronous").fetchone()[0])
    if level <= 1:
        return None
    conn.execute("PRAGMA synchronous = NORMAL")
    return level


def _rollback(conn: sqlite3.Connection, nested: bool) -> None:
    if nested:
        conn.execute("ROLLBACK TO projections")
        conn.execute("RELEASE projections")
    elif conn.in_transaction:
        conn.rollback()


def memory() -> SqliteReadModels:
    """Read models in a private in-memory database (tests of projections)."""
    return SqliteReadModels(sqlite3.connect(":memory:", isolation_level=None))


@contextmanager
def scratch() -> Iterator[SqliteReadModels]:
    """Read models in a temporary file, deleted on exit: time travel folds into one."""
    with tempfile.TemporaryDirectory(prefix="govledger-replay-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "replay.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        try:
            yield SqliteReadModels(conn)
        finally:
            conn.close()
