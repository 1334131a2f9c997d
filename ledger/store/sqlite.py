"""The SQLite event store: append-only table, atomic signed appends, streaming reads.

SPEC §1 (guarantees 1, 2, 3, 6), §2. Appends compute ``seq``, ``prev``, ``ts``, ``hash`` and
``sig`` inside one ``BEGIN IMMEDIATE`` transaction, so any number of threads and processes can
append to one file without a gap, duplicate or fork. UPDATE and DELETE on ``events`` are refused
by triggers. The Merkle tree's complete-subtree hashes are written in the same transaction.

A ``Ledger`` may be shared by threads: each thread uses a connection of its own (a transaction
belongs to a connection, so one thread's reads never see, and its errors never roll back,
another's open transaction), and its writes take a lock of the object first, so its threads
queue in turn instead of polling SQLite's lock. Every ``sqlite3`` error leaves as a
``StoreError`` (``translate``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import wraps
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from ledger.crypto.keyfiles import Signer
from ledger.errors import (
    AlreadyInitialized,
    DatabaseLocked,
    InputError,
    LedgerMissing,
    NotALedger,
    StoreError,
)
from ledger.event.drafts import MAX_PAYLOAD_BYTES, TYPED_PAYLOADS, Draft, Prepared, prepare
from ledger.event.envelope import ZERO_HASH, Event
from ledger.event.framing import ROW_COLUMNS
from ledger.event.rows import EventRow, Row, event_row, parse_stored, row_to_event
from ledger.settings import env_choice, env_int
from ledger.store import sqlite_read_models
from ledger.store.base import EventFilter
from ledger.store.key_reads import KeyReads
from ledger.store.sessions import ThreadSessions
from ledger.store.sqlite_read_models import SqliteReadModels
from ledger.store.sqlite_schema import SCHEMA_VERSION, migrate, read_schema_version
from ledger.store.tip import Tip
from ledger.tlog import merkle

DEFAULT_BUSY_TIMEOUT_MS = 10_000

EVENT_COLUMNS = ROW_COLUMNS
REPLAY_COLUMNS = "seq, id, ts, type, agent, run, actor, payload, key, hash"
"""The columns of ``EventRow``, in its order."""
__all__ = [
    "MAX_PAYLOAD_BYTES",
    "TYPED_PAYLOADS",
    "Draft",
    "EventRow",
    "Ledger",
    "Prepared",
    "Row",
    "parse_stored",
    "prepare",
    "root_key_payload",
    "row_to_event",
]
MAX_SEQ = 2**63 - 1
"""The largest seq SQLite can store (a 64-bit signed integer)."""


def translate(e: sqlite3.Error, path: str) -> StoreError:
    """The ledger error of a ``sqlite3`` error met on the file at ``path`` (all exit 3)."""
    msg = str(e)
    if "locked" in msg or "busy" in msg:
        return _database_locked(path)
    if any(s in msg for s in ("not a database", "malformed", "no such table", "no such column")):
        return NotALedger(f"{path}: not a govledger database ({msg})")
    if "closed database" in msg:
        return StoreError(f"{path}: the ledger is closed")
    return StoreError(f"{path}: {msg}")


def _database_locked(path: str) -> DatabaseLocked:
    return DatabaseLocked(
        f"{path}: database is locked by another writer (waited past the busy timeout)"
    )


def _busy_timeout(ms: int | None) -> int:
    """The busy timeout in milliseconds: ``ms``, else ``GOVLEDGER_BUSY_TIMEOUT_MS``, else 10 s."""
    if ms is not None:
        return ms
    return env_int("GOVLEDGER_BUSY_TIMEOUT_MS", DEFAULT_BUSY_TIMEOUT_MS)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _translated(
    method: Callable[Concatenate[Ledger, _P], _R],
) -> Callable[Concatenate[Ledger, _P], _R]:
    """``method`` with its ``sqlite3`` errors translated (``translate``)."""

    @wraps(method)
    def wrapper(self: Ledger, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise translate(e, self.path) from e

    return wrapper


class _Session:
    """One thread's use of a ledger: its connection, and the tip of the log as of this
    connection's last commit (see ``appending.Tip``) with what tells that nothing was written
    since (``PRAGMA data_version``, which moves when another connection commits, and this
    connection's change count), and the tip staged by its open transaction."""

    __slots__ = ("conn", "read_models", "staged", "thread", "tip", "tip_version")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.read_models = SqliteReadModels(conn)
        self.thread = threading.current_thread()
        self.tip: Tip | None = None
        self.tip_version: tuple[int, int] | None = None
        self.staged: Tip | None = None


def _unreadable(e: sqlite3.DatabaseError, path: str, what: str) -> StoreError:
    """A read that SQLite refused: text that is not UTF-8 in ``what``, or a corrupt file."""
    if "decode" in str(e):
        return NotALedger(f"{path}: {what} holds text that is not UTF-8 (a tampered file?)")
    return translate(e, path)


class Ledger(KeyReads):
    """One ledger: a SQLite file holding the event log, key index, Merkle nodes and read models."""

    def __init__(
        self,
        path: str,
        conn: sqlite3.Connection,
        *,
        synchronous: str | None = None,
        busy_timeout_ms: int | None = None,
    ) -> None:
        """A ledger at ``path`` whose connection for this thread is ``conn``; other threads
        connect with the same ``synchronous`` and busy timeout (``_connect``)."""
        self.path = path
        self._synchronous = synchronous
        self._busy_timeout_ms = _busy_timeout(busy_timeout_ms)
        self._origin: str | None = None
        self._sessions: ThreadSessions[_Session] = ThreadSessions(path)
        # Reentrant, so a nested ``write()`` fails on SQLite's own error instead of waiting.
        self._write_lock = threading.RLock()
        self._adopt(conn)

    def _adopt(self, conn: sqlite3.Connection) -> _Session:
        return self._sessions.adopt(_Session(conn))

    def _session(self) -> _Session:
        """This thread's session, connecting on its first use."""
        session = self._sessions.current()
        if session is not None:
            return session
        self._sessions.refuse_if_closed()
        conn = self._connect(
            self.path, synchronous=self._synchronous, busy_timeout_ms=self._busy_timeout_ms
        )
        return self._adopt(conn)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the file."""
        return self._session().conn

    def read_models(self) -> SqliteReadModels:
        """The read-model tables, through this thread's connection (so ``write()`` covers them)."""
        return self._session().read_models

    def scratch_read_models(self) -> AbstractContextManager[SqliteReadModels]:
        """Read models in a temporary SQLite file, deleted on exit (time travel)."""
        return sqlite_read_models.scratch()

    # --- opening --------------------------------------------------------------------------

    @staticmethod
    def _connect(
        path: str, *, synchronous: str | None, busy_timeout_ms: int | None
    ) -> sqlite3.Connection:
        timeout_ms = _busy_timeout(busy_timeout_ms)
        sync = synchronous.upper() if synchronous else env_choice("GOVLEDGER_SYNCHRONOUS", "FULL")
        if sync not in ("FULL", "NORMAL", "EXTRA"):
            raise InputError(f"GOVLEDGER_SYNCHRONOUS must be FULL, NORMAL or EXTRA, not {sync!r}")
        try:
            # Shared by threads only to be closed by ``close``: each thread uses its own.
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=timeout_ms / 1000
            )
        except sqlite3.Error as e:
            raise translate(e, path) from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {sync}")
        except sqlite3.Error as e:
            conn.close()
            raise translate(e, path) from e
        except UnicodeDecodeError as e:  # SQLite's message quotes a schema that is not UTF-8
            conn.close()
            raise NotALedger(f"{path}: not a govledger database (its schema is not UTF-8)") from e
        return conn

    @classmethod
    def open(
        cls, path: str | Path, *, synchronous: str | None = None, busy_timeout_ms: int | None = None
    ) -> Ledger:
        """Open an existing ledger (``LedgerMissing``, ``NotALedger``: exit 3)."""
        p = str(path)
        if not os.path.exists(p):
            raise LedgerMissing(f"no ledger at {p}: create one with `govledger init --origin NAME`")
        conn = cls._connect(p, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        try:
            version = read_schema_version(conn)
        except sqlite3.Error as e:
            conn.close()
            raise translate(e, p) from e
        if version is None:
            conn.close()
            raise NotALedger(f"{p}: not a govledger ledger (no govledger schema)")
        if version > SCHEMA_VERSION:
            conn.close()
            raise NotALedger(
                f"{p}: schema version {version} is newer than this govledger ({SCHEMA_VERSION})"
            )
        ledger = cls(p, conn, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        if version < SCHEMA_VERSION:
            with ledger.write():
                migrate(conn, version)
        return ledger

    @classmethod
    def create(
        cls, path: str | Path, *, origin: str, root: Signer, synchronous: str | None = None
    ) -> Ledger:
        """Create a ledger and append ``ledger.created`` registering ``root`` (SPEC §2.3)."""
        p = str(path)
        cls.check_new(p)
        conn = cls._connect(p, synchronous=synchronous, busy_timeout_ms=None)
        ledger = cls(p, conn, synchronous=synchronous)
        with ledger.write():
            if read_schema_version(conn) is not None:
                raise AlreadyInitialized(f"{p} already holds a ledger")
            migrate(conn, 0)
        ledger.append(
            Draft("ledger.created", {"origin": origin, "key": root_key_payload(root, "governor")}),
            signer=root,
        )
        return ledger

    @classmethod
    def create_empty(cls, path: str | Path) -> Ledger:
        """A ledger with the schema and no event, to copy another log into."""
        p = str(path)
        cls.check_new(p)
        ledger = cls(p, cls._connect(p, synchronous=None, busy_timeout_ms=None))
        with ledger.write():
            if read_schema_version(ledger.conn) is not None:
                raise AlreadyInitialized(f"{p} already holds a ledger")
            migrate(ledger.conn, 0)
        return ledger

    @staticmethod
    def check_new(path: str) -> None:
        """Refuse to create a ledger where one (or another file) already is."""
        if os.path.exists(path) and os.path.getsize(path) > 0:
            try:
                Ledger.open(path).close()
            except NotALedger as e:
                raise NotALedger(
                    f"{path} exists and is not a govledger ledger; choose another path"
                ) from e
            raise AlreadyInitialized(
                f"{path} already holds a ledger; refusing to overwrite it (choose another --db)"
            )

    def close(self) -> None:
        """Close the connections of every thread; later use raises ``StoreError``."""
        self._sessions.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ---------------------------------------------------------------------

    def write(self) -> _WriteTx:
        """``with ledger.write() as tx:`` one ``BEGIN IMMEDIATE`` transaction, rolled back on
        error; ``tx.append`` appends in it."""
        return _WriteTx(self)

    def _append_locked(
        self,
        prepared: list[Prepared],
        signer: Signer,
        progress: Callable[[int], None] | None,
    ) -> list[Event]:
        """Append inside this thread's open write transaction, after the tip it staged (or
        the tip read from the file); the new tip is kept only if the transaction commits."""
        from ledger.store import chaining  # the write path: a reading command never loads it
        from ledger.store.sqlite_chain import SqliteChain

        return chaining.append_locked(SqliteChain(self), prepared, signer, progress)

    def _read_tip(self) -> Tip:
        """The tip from the file: the last event and the frontier's nodes (two queries)."""
        row = self.conn.execute(
            "SELECT seq, hash, ts FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        size, prev, ts = (0, ZERO_HASH, "") if row is None else (row[0], row[1], row[2])
        frontier = self.get_nodes(merkle.range_nodes(0, size))
        return Tip(size, prev, ts, frontier, {})

    # --- reading --------------------------------------------------------------------------

    @property
    @_translated
    def origin(self) -> str:
        if self._origin is None:
            try:
                row = self.conn.execute("SELECT payload FROM events WHERE seq = 1").fetchone()
            except sqlite3.DatabaseError as e:
                raise _unreadable(e, self.path, "seq 1") from e
            if row is None:
                raise NotALedger(f"{self.path}: ledger has no ledger.created event")
            try:
                payload = json.loads(row[0])
                origin = payload.get("origin") if isinstance(payload, dict) else None
            except (ValueError, TypeError):
                origin = None
            if not isinstance(origin, str):
                raise NotALedger(f"{self.path}: seq 1 is not a well-formed ledger.created event")
            self._origin = origin
        return self._origin

    @_translated
    def head(self) -> tuple[int, str]:
        """(size, hash of the last event); (0, 64 zeros) for an empty log."""
        try:
            row = self.conn.execute(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except sqlite3.DatabaseError as e:
            raise _unreadable(e, self.path, "the last event") from e
        return (0, ZERO_HASH) if row is None else (int(row[0]), str(row[1]))

    @property
    def size(self) -> int:
        return self.head()[0]

    @_translated
    def hash_at(self, seq: int) -> str:
        if seq == 0:
            return ZERO_HASH
        row = self.conn.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise InputError(f"seq {seq} is not in the log (size {self.size})")
        return str(row[0])

    @_translated
    def event_at(self, seq: int) -> Event:
        row = self.conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,)
        ).fetchone()
        if row is None:
            raise InputError(f"seq {seq} is not in the log (size {self.size})")
        return row_to_event(row)

    @_translated
    def seq_at_time(self, ts: str) -> int:
        """The last seq whose ts is at or before ``ts`` (0 when none)."""
        row = self.conn.execute("SELECT MAX(seq) FROM events WHERE ts <= ?", (ts,)).fetchone()
        return int(row[0] or 0)

    @_translated
    def find_id(self, event_id: str) -> int | None:
        row = self.conn.execute("SELECT seq FROM events WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else int(row[0])

    @_translated
    def row_at(self, seq: int) -> Row | None:
        rows = self._fetch(f"SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?", (seq,))
        return tuple(rows[0]) if rows else None

    @_translated
    def last_before(self, seq: int) -> tuple[int, str, str] | None:
        row = self.conn.execute(
            "SELECT seq, hash, ts FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 1", (seq,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    @_translated
    def count_events(
        self, *, from_seq: int = 1, to_seq: int | None = None, filter: EventFilter | None = None
    ) -> int:
        where, params = _filter_sql(filter)
        extra = f" AND ({where})" if where else ""
        stop = to_seq if to_seq is not None and to_seq >= 0 else MAX_SEQ
        row = self.conn.execute(
            f"SELECT count(*) FROM events WHERE seq >= ? AND seq <= ?{extra}",
            (from_seq, stop, *params),
        ).fetchone()
        return int(row[0])

    def iter_rows(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        filter: EventFilter | None = None,
        batch: int = 2000,
    ) -> Iterator[Row]:
        """Stream raw event rows in seq order, ``batch`` rows per query (constant memory)."""
        where, params = _filter_sql(filter)
        for rows in self._row_batches(from_seq, to_seq, where, params, batch):
            yield from rows

    def _row_batches(
        self,
        from_seq: int,
        to_seq: int | None,
        where: str,
        params: Sequence[Any],
        batch: int,
        columns: str = EVENT_COLUMNS,
    ) -> Iterator[list[Any]]:
        """The rows of ``iter_rows`` (of ``columns``, ``seq`` first), one list per query."""
        last = from_seq - 1
        # A plain upper bound (not "no bound or seq <= ?"), so SQLite ends the range scan
        # there: an unusable bound made the query after a range's last batch scan the rest of
        # the table, 0.15 s per range on a million events.
        stop = to_seq if to_seq is not None and to_seq >= 0 else MAX_SEQ
        extra = f" AND ({where})" if where else ""
        sql = f"SELECT {columns} FROM events WHERE seq > ? AND seq <= ?{extra} ORDER BY seq LIMIT ?"
        while True:
            if last >= stop:
                return
            rows = self._fetch(sql, (last, stop, *params, batch))
            if not rows:
                return
            yield rows
            last = rows[-1][0]
            if len(rows) < batch:
                return

    @_translated
    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Any]:
        conn = self.conn
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            if "decode" not in str(e):
                raise
        # Text that is not UTF-8 (a tampered file): read it with lone surrogates, so verify
        # reports the event as malformed instead of failing to read the log.
        conn.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.text_factory = str

    def replay_events(self, *, from_seq: int = 1, to_seq: int | None = None) -> Iterator[EventRow]:
        """Stream events in seq order as ``EventRow``: the replay driver's read path."""
        for rows in self._row_batches(from_seq, to_seq, "", (), 2000, REPLAY_COLUMNS):
            yield from map(event_row, rows)

    def iter_events(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        filter: EventFilter | None = None,
    ) -> Iterator[Event]:
        """Stream events in seq order, decoded to ``Event`` (payload as a dict). Rows are
        converted a query's worth at a time (``map``), not through ``iter_rows``: one
        generator step less per event of a replay."""
        where, params = _filter_sql(filter)
        for rows in self._row_batches(from_seq, to_seq, where, params, 2000):
            yield from map(row_to_event, rows)

    # --- side tables ----------------------------------------------------------------------

    def ensure_side_table(self, name: str, columns: str) -> None:
        """Create the side table ``name`` when missing (see ``base.SideTables``)."""
        with self.write():
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")

    # --- checkpoints ----------------------------------------------------------------------

    def put_checkpoint(self, *, size: int, signer: str, root: str, note: str, created: str) -> None:
        with self.write():
            self.conn.execute(
                "INSERT OR REPLACE INTO checkpoints (size, signer, root, note, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (size, signer, root, note, created),
            )

    @_translated
    def latest_checkpoint(self, min_size: int = 0, max_size: int | None = None) -> str | None:
        row = self.conn.execute(
            "SELECT note FROM checkpoints WHERE size >= ? AND size <= ? "
            "ORDER BY size DESC, signer LIMIT 1",
            (min_size, self.size if max_size is None else max_size),
        ).fetchone()
        return None if row is None else str(row[0])

    # --- keys -----------------------------------------------------------------------------

    @_translated
    def keys(self) -> list[dict[str, Any]]:
        """Every key registered in the log, oldest first, from the key index."""
        cur = self.conn.execute(
            "SELECT name, key_id, role, agent, public_key, registered_seq, revoked_seq "
            "FROM keys ORDER BY registered_seq"
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    # --- appending ------------------------------------------------------------------------

    def append(self, draft: Draft, *, signer: Signer) -> Event:
        """Append one event signed by ``signer``; durable when this returns."""
        return self.append_many([draft], signer=signer)[0]

    def append_many(
        self,
        drafts: Iterable[Draft],
        *,
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append a batch atomically: all events or none (SPEC §1.6).

        Inside one write transaction each draft is validated (a single draft before it
        starts), the signer's key is authorized for its type and its hash chained; then ids
        are checked against the batch and the log, signatures made (in worker processes for
        large batches: they do not depend on each other) and the rows and Merkle nodes
        written. The first bad draft is reported and nothing is written. Messages name the event
        as ``event`` for a single draft and ``event N`` (1-based) in a batch.
        """
        drafts = list(drafts)
        if not drafts:
            return []
        if len(drafts) == 1:
            # Validated before the write lock is taken: a single append's lock is held only
            # for chaining, signing and writing.
            pending = [prepare(drafts[0])]
        else:
            # Validated inside the transaction by the chaining loop, event by event, while the
            # workers sign the events before them; one bad draft rolls the batch back.
            pending = [Prepared(d, None, f"event {i + 1}") for i, d in enumerate(drafts)]
        with self.write():
            return self._append_locked(pending, signer, progress)

    def append_locked(
        self,
        prepared: list[Prepared],
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append inside the open ``write()`` transaction (an import calls it chunk by chunk)."""
        return self._append_locked(prepared, signer, progress)

    def append_signed(self, rows: Sequence[Row]) -> None:
        """Inside ``write()``: rows signed elsewhere, as they are (``chaining.append_signed``)."""
        from ledger.store import chaining
        from ledger.store.sqlite_chain import SqliteChain

        chaining.append_signed(SqliteChain(self), rows)

    @_translated
    def save_checkpoint(self, size: int, signer: str, root: str, note: str, created: str) -> None:
        """Keep a checkpoint the ledger signed (one per size and signer)."""
        with self.write():
            self.conn.execute(
                "INSERT OR REPLACE INTO checkpoints (size, signer, root, note, created) VALUES (?, ?, ?, ?, ?)",
                (size, signer, root, note, created),
            )

    # --- Merkle tree (RFC 9162) -------------------------------------------------------------

    def get_node(self, level: int, index: int) -> bytes:
        """One node, as ``get_nodes`` reads it (``StoreError`` when missing or malformed)."""
        return self.get_nodes([(level, index)])[level, index]

    def _node_hash(self, value: Any, level: int, index: int) -> bytes:
        """A stored hash (hex text in ``events``, bytes in ``merkle_nodes``) as 32 bytes;
        ``StoreError`` naming the node when a tampered store holds something else."""
        try:
            h = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
        except (ValueError, TypeError):
            h = b""
        if len(h) != merkle.HASH_SIZE:
            raise StoreError(f"{self.path}: Merkle node ({level}, {index}) is malformed")
        return h

    @_translated
    def get_nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """Every node of ``ids`` in ONE query: level 0 from ``events.hash`` (seq = index + 1),
        levels below ``merkle.STORED_LEVEL`` from the leaves under them, the others from
        ``merkle_nodes`` (``StoreError`` naming the first one missing)."""
        low = [n for n in ids if 0 < n[0] < merkle.STORED_LEVEL]
        leaves = sorted(
            {i for level, i in ids if level == 0}.union(*(merkle.leaves_under(*n) for n in low))
        )
        inner = [n for n in ids if n[0] >= merkle.STORED_LEVEL]
        parts: list[str] = []
        params: list[int] = []
        if leaves:
            parts.append(
                f"SELECT 0, seq - 1, hash FROM events WHERE seq IN ({','.join('?' * len(leaves))})"
            )
            params += [i + 1 for i in leaves]
        if inner:
            # A CROSS JOIN from the wanted keys, so each is a primary-key lookup: SQLite plans
            # ``(closes, level) IN (VALUES ...)`` as a scan of the whole table.
            parts.append(
                "SELECT m.level, (m.closes >> m.level) - 1, m.hash "
                f"FROM (VALUES {','.join(['(?, ?)'] * len(inner))}) AS w "
                "CROSS JOIN merkle_nodes AS m ON m.closes = w.column1 AND m.level = w.column2"
            )
            params += [x for n in inner for x in merkle.stored_key(*n)]
        if not parts:
            return {}
        out: dict[merkle.NodeId, bytes] = {}
        try:
            rows = self.conn.execute(" UNION ALL ".join(parts), params).fetchall()
        except sqlite3.DatabaseError as e:
            raise _unreadable(e, self.path, "the Merkle tree") from e
        for level, index, value in rows:
            out[int(level), int(index)] = self._node_hash(value, int(level), int(index))
        for n in low:
            try:
                out[n] = merkle.subtree_hash([out[0, i] for i in merkle.leaves_under(*n)])
            except KeyError:
                pass  # a leaf is missing: the node is reported missing below
        for n in ids:
            if n not in out:
                raise StoreError(f"{self.path}: Merkle node ({n[0]}, {n[1]}) is missing")
        return out

    @_translated
    def stored_nodes_from(self, key: tuple[int, int], limit: int) -> list[tuple[int, int, Any]]:
        try:
            rows: list[tuple[int, int, Any]] = self.conn.execute(
                "SELECT closes, level, hash FROM merkle_nodes WHERE (closes, level) >= (?, ?) "
                "ORDER BY closes, level LIMIT ?",
                (*key, limit),
            ).fetchall()
        except sqlite3.DatabaseError as e:  # a corrupt file
            raise StoreError(f"cannot read the stored Merkle tree ({e})") from e
        return rows

    def fetch_plan(self, plan: merkle.ProofPlan) -> list[bytes]:
        """The hashes of ``plan`` (a root or a proof) from one batched read."""
        return plan.assemble(self.get_nodes(plan.node_ids))

    def root_at(self, size: int) -> bytes:
        """MTH of the first ``size`` events from stored nodes (one query)."""
        hashes = self.fetch_plan(merkle.root_plan(size))
        return hashes[0] if hashes else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of leaf ``index`` (seq ``index + 1``) in a tree of ``size``."""
        return self.fetch_plan(merkle.inclusion_plan(index, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of ``size1`` to the tree of ``size2``."""
        return self.fetch_plan(merkle.consistency_plan(size1, size2))


class _WriteTx:
    """One write transaction of this thread's connection. The object's write lock is taken
    first (waiting at most the busy timeout, as SQLite does for other processes), then
    ``BEGIN IMMEDIATE``; only a transaction begun here is committed or rolled back here."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.data_version = -1

    def __enter__(self) -> _WriteTx:
        ledger = self.ledger
        session = ledger._session()
        self.session = session
        lock = ledger._write_lock
        # A free lock is taken without the timeout's clock readings (the single-thread case).
        if not lock.acquire(blocking=False) and not lock.acquire(
            timeout=ledger._busy_timeout_ms / 1000
        ):
            raise _database_locked(ledger.path)
        conn = session.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            # Not begun here (locked, or this thread's transaction is already open): nothing
            # of ours to roll back.
            lock.release()
            raise translate(e, ledger.path) from e
        try:
            self.data_version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as e:
            _rollback(conn)
            lock.release()
            raise translate(e, ledger.path) from e
        if (self.data_version, conn.total_changes) != session.tip_version:
            session.tip = None
        session.staged = session.tip
        return self

    def append(
        self,
        drafts: Sequence[Draft | Prepared],
        *,
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append in this transaction: drafts as ``Ledger.append_many`` takes them (a single
        one validated first, a batch's as they are chained), ``Prepared`` ones as they are."""
        if not drafts:
            return []
        pending = [
            d
            if isinstance(d, Prepared)
            else prepare(d)
            if len(drafts) == 1
            else Prepared(d, None, f"event {i + 1}")
            for i, d in enumerate(drafts)
        ]
        return self.ledger._append_locked(pending, signer, progress)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        session = self.session
        conn = session.conn
        staged, session.staged, session.tip = session.staged, None, None
        try:
            if exc_type is None:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error as e:
                    _rollback(conn)
                    raise translate(e, self.ledger.path) from e
                # data_version as read under the write lock: our own commit does not move it.
                session.tip, session.tip_version = staged, (self.data_version, conn.total_changes)
                return
            _rollback(conn)
            if isinstance(exc, sqlite3.Error):
                raise translate(exc, self.ledger.path) from exc
        finally:
            self.ledger._write_lock.release()


def _filter_sql(f: EventFilter | None) -> tuple[str, list[Any]]:
    """The SQL condition and parameters of an ``EventFilter`` ("" for none)."""
    if f is None:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("run", f.run), ("agent", f.agent)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if f.types is not None:
        clauses.append(f"type IN ({', '.join('?' * len(f.types))})" if f.types else "0")
        params.extend(f.types)
    if f.since is not None:
        clauses.append("ts >= ?")
        params.append(f.since)
    if f.until is not None:
        clauses.append("ts <= ?")
        params.append(f.until)
    return " AND ".join(clauses), params


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back this connection's open transaction, if any. A failed rollback is not
    reported: the error that led here is the one to report, and SQLite has then rolled the
    transaction back itself or the connection is unusable."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def root_key_payload(signer: Signer, role: str, agent: str | None = None) -> dict[str, Any]:
    """The KEY object (SPEC §2.3) for ``signer``'s public key."""
    return {
        "key_id": signer.key_id,
        "name": signer.name,
        "public_key": signer.public_key_b64,
        "role": role,
        "agent": agent,
    }
