"""The PostgreSQL event store: the same surface as the SQLite ``Ledger``, its guarantees kept by
the database itself.

SPEC §8, §1, §2. An append locks the one-row head table (``gl_lock_head()``), chains, signs
and inserts through the shared write path (``ledger.store.chaining``), in one transaction: the
trigger of ``postgres_schema`` refuses a row that does not extend the head, so even a writer that
bypasses govledger cannot fork or gap the log. The transaction costs two round trips:
``BEGIN`` and the head lock go out in one message, the writes (held back meanwhile) and
``COMMIT`` in the next. The tip of the log (frontier and keys read so far) is kept between appends and
trusted only while the locked head still is the one it was computed for.

A ``PgLedger`` may be shared by threads: each thread has a connection of its own (opened on
its first use), and a lock of the object serializes the write transactions of its threads.
Every psycopg error leaves as a ledger error (``translate``), with the URL's password hidden.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ledger.crypto.keyfiles import Signer
from ledger.errors import (
    AlreadyInitialized,
    DatabaseLocked,
    DuplicateEventId,
    InputError,
    LedgerMissing,
    NotALedger,
    StoreError,
)
from ledger.event.drafts import Draft, Prepared, prepare
from ledger.event.envelope import ZERO_HASH, Event
from ledger.event.framing import ROW_COLUMNS
from ledger.settings import env_int
from ledger.store import chaining, postgres_read_models
from ledger.store.key_reads import KeyReads
from ledger.store.postgres_read_models import PgReadModels, Translated
from ledger.store.postgres_schema import (
    APP_ROLE_SQL,
    META_TABLE,
    MIGRATIONS,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    in_schema,
)
from ledger.store.sessions import ThreadSessions
from ledger.store.tip import Tip
from ledger.tlog import merkle

if TYPE_CHECKING:
    from ledger.store.sqlite_read_models import SqliteReadModels

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql as pg_sql
    from psycopg.adapt import Transformer
except ImportError:  # pragma: no cover - the extra is not installed
    psycopg = None  # type: ignore[assignment]

DEFAULT_LOCK_TIMEOUT_MS = 10_000
SCHEMES = ("postgresql://", "postgres://")
REPLAY_COLUMNS = "seq, id, ts, type, agent, run, actor, payload, key, hash"
MAX_SEQ = 2**63 - 1
FILTER_WINDOW = 25
"""A filtered read looks at up to this many pages' worth of seqs per query."""
READ_AHEAD = (5_000, 100_000)
"""``replay_events`` of a range of this many events (at least, at most: a replay's batch) has
the next range of the same size read meanwhile, by a thread of its own (``_read_ahead``)."""
PAGE = 2000
"""Events read by one query of a sequential read (a page of seqs)."""
INSERT_ROWS = 1000
"""Rows a write transaction holds back before sending them on their own (the rest go with
``COMMIT``)."""


def is_postgres_url(value: str) -> bool:
    """Whether ``--db`` names a PostgreSQL database (SPEC §5: a ``postgresql://`` URL)."""
    return value.startswith(SCHEMES)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "the PostgreSQL URL"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(e: BaseException) -> str:
    """The error's text on one line: libpq's lines joined, its prefixes and hints dropped."""
    lines = [" ".join(line.split()) for line in str(e).splitlines()]
    text = "; ".join(
        line for line in lines if line and not line.startswith(("Is the server", "HINT"))
    )
    for prefix in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(prefix)
    return text.replace("FATAL: ", "")


def translate(e: Exception, where: str) -> StoreError | InputError:
    """The ledger error of a psycopg error met on the database ``where`` (redacted URL)."""
    if isinstance(e, pg_errors.LockNotAvailable | pg_errors.QueryCanceled):
        return DatabaseLocked(
            f"{where}: the ledger's head is locked by another writer (waited past the lock timeout)"
        )
    if isinstance(e, pg_errors.UniqueViolation) and "events_id_key" in str(e):
        return DuplicateEventId(f"{where}: {_first_line(e)}")
    if isinstance(e, pg_errors.UndefinedTable | pg_errors.UndefinedFunction):
        return NotALedger(f"{where}: not a govledger database ({_first_line(e)})")
    if isinstance(e, pg_errors.InvalidCatalogName):
        return LedgerMissing(f"{where}: {_first_line(e)}")
    if isinstance(e, psycopg.OperationalError):
        return StoreError(f"{where}: cannot connect to PostgreSQL: {_first_line(e)}")
    if isinstance(e, psycopg.ProgrammingError) and not isinstance(e, psycopg.DatabaseError):
        return StoreError(f"{where}: {_first_line(e)}")
    return StoreError(f"{where}: {_first_line(e)}")


def _connect(url: str) -> Any:
    where = redact(url)
    if psycopg is None:
        raise StoreError(
            f"{where}: PostgreSQL support is not installed (pip install 'govledger[postgres]')"
        )
    timeout_ms = env_int("GOVLEDGER_BUSY_TIMEOUT_MS", DEFAULT_LOCK_TIMEOUT_MS)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        raise translate(e, where) from e
    except ValueError as e:  # a URL libpq cannot parse
        raise StoreError(f"{where}: not a valid PostgreSQL URL ({e})") from e
    try:
        # Durable means committed with the WAL flushed (whatever the server's default).
        conn.execute(
            "SELECT set_config('lock_timeout', %s, false), "
            "set_config('synchronous_commit', 'on', false)",
            (f"{int(timeout_ms)}ms",),
        )
    except psycopg.Error as e:
        conn.close()
        raise translate(e, where) from e
    return conn


class QmarkConnection:
    """The connection seen through SQLite's ``conn.execute(sql, params)`` with ``?``
    placeholders, for read code shared by both stores (verify, proofs, export). Errors leave
    translated."""

    def __init__(self, conn: Any, where: str, ledger: PgLedger | None = None) -> None:
        self._conn = conn
        self._where = where
        self._ledger = ledger

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            if self._ledger is not None and self._ledger._writes is not None:
                self._ledger._writes.flush()  # a read inside a write transaction sees its writes
            return self._conn.execute(sql.replace("%", "%%").replace("?", "%s"), tuple(params))
        except psycopg.Error as e:
            raise translate(e, self._where) from e


_T = TypeVar("_T")


class _Session:
    """One thread's use of a ``PgLedger``: its connection, and the state of the write
    transaction open on it (the head read under the lock, the tip staged, the held writes)."""

    __slots__ = (
        "ahead",
        "cc",
        "conn",
        "head",
        "in_write",
        "read_models",
        "staged",
        "thread",
        "writes",
    )

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.thread = threading.current_thread()
        self.cc: Any = None
        self.read_models: PgReadModels | None = None
        self.staged: Tip | None = None
        self.head: tuple[int, str, str] | None = None
        self.in_write = False
        self.writes: _Writes | None = None
        self.ahead: tuple[tuple[int, int], Future[list[Any]]] | None = None


class _PerThread(Generic[_T]):
    """An attribute of ``PgLedger`` kept in the calling thread's ``_Session``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name.removeprefix("_")

    def __get__(self, ledger: PgLedger, owner: type | None = None) -> _T:
        value: _T = getattr(ledger._session(), self.field)
        return value

    def __set__(self, ledger: PgLedger, value: _T) -> None:
        setattr(ledger._session(), self.field, value)


class PgLedger(KeyReads):
    """One ledger in a PostgreSQL database (its current schema).

    Shared by threads as the SQLite ``Ledger`` is: each thread uses a connection of its own,
    opened on its first use (a transaction belongs to a connection, so one thread's reads never
    see, and its errors never roll back, another's open transaction), and its write
    transactions take a lock of the object first, so the threads of one process queue in turn
    and the tip kept between appends serves them all."""

    _conn: _PerThread[Any] = _PerThread()
    _cc: _PerThread[Any] = _PerThread()
    _read_models: _PerThread[PgReadModels | None] = _PerThread()
    _staged: _PerThread[Tip | None] = _PerThread()
    _head: _PerThread[tuple[int, str, str] | None] = _PerThread()
    _in_write: _PerThread[bool] = _PerThread()
    _writes: _PerThread[_Writes | None] = _PerThread()
    _ahead: _PerThread[tuple[tuple[int, int], Future[list[Any]]] | None] = _PerThread()

    def __init__(self, url: str, conn: Any) -> None:
        self.url = url
        self.path = redact(url)
        self._origin: str | None = None
        self._write_lock = threading.Lock()
        self._tip: Tip | None = None
        self._sessions: ThreadSessions[_Session] = ThreadSessions(self.path)
        self._reader: ThreadPoolExecutor | None = None
        """The thread (and its connection) that reads ahead (``replay_events``), once needed."""
        self._reader_lock = threading.Lock()
        self._adopt(conn)

    def _adopt(self, conn: Any) -> _Session:
        return self._sessions.adopt(_Session(conn))

    def _session(self) -> _Session:
        """This thread's session, connecting on its first use."""
        session = self._sessions.current()
        if session is not None and not (session.conn.closed and not session.in_write):
            return session
        # First use by this thread, or its connection was lost (a server restart, a failed
        # rollback): a new one, outside any transaction.
        self._sessions.refuse_if_closed()
        return self._adopt(_connect(self.url))

    # --- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> PgLedger:
        """Open the ledger at ``url`` (``StoreError``, ``NotALedger``: exit 3)."""
        conn = _connect(url)
        ledger = cls(url, conn)
        version = ledger._schema_version()
        if version is None:
            conn.close()
            raise NotALedger(
                f"{ledger.path}: no govledger ledger here: create one with "
                "`govledger --db URL init --origin NAME`"
            )
        if version > SCHEMA_VERSION:
            conn.close()
            raise NotALedger(
                f"{ledger.path}: schema version {version} is newer than this govledger "
                f"({SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION:
            ledger._migrate()
        return ledger

    @classmethod
    def create(
        cls, url: str, *, origin: str, root: Signer, app_role: str | None = None
    ) -> PgLedger:
        """Create the schema, optionally the application role, and append ``ledger.created``."""
        from ledger.store.sqlite import root_key_payload

        conn = _connect(url)
        ledger = cls(url, conn)
        try:
            if ledger._schema_version() is not None:
                raise AlreadyInitialized(f"{ledger.path} already holds a ledger")
            with ledger._errors(), conn.transaction():
                conn.execute(in_schema(SCHEMA_SQL, ledger._schema()))
                conn.execute(
                    f"INSERT INTO {META_TABLE} (key, value) VALUES ('schema_version', %s)",
                    (str(SCHEMA_VERSION),),
                )
                if app_role is not None:
                    ledger._create_app_role(app_role)
            ledger.append(
                Draft(
                    "ledger.created", {"origin": origin, "key": root_key_payload(root, "governor")}
                ),
                signer=root,
            )
        except BaseException:
            conn.close()
            raise
        return ledger

    @classmethod
    def open_or_create_empty(cls, url: str) -> PgLedger:
        """The ledger at ``url``; a database without one gets the schema and no event (a
        copy's destination)."""
        conn = _connect(url)
        ledger = cls(url, conn)
        try:
            if ledger._schema_version() is None:
                with ledger._errors(), conn.transaction():
                    conn.execute(in_schema(SCHEMA_SQL, ledger._schema()))
                    conn.execute(
                        f"INSERT INTO {META_TABLE} (key, value) VALUES ('schema_version', %s)",
                        (str(SCHEMA_VERSION),),
                    )
            else:
                ledger._migrate()
        except BaseException:
            conn.close()
            raise
        return ledger

    @staticmethod
    def check_new(url: str) -> None:
        """Refuse to create a ledger where one already is."""
        conn = _connect(url)
        try:
            if PgLedger(url, conn)._schema_version() is not None:
                raise AlreadyInitialized(
                    f"{redact(url)} already holds a ledger; refusing to overwrite it"
                )
        finally:
            conn.close()

    def _schema(self) -> str:
        """The schema the ledger is (or is made) in: the first of the ``search_path``."""
        return str(self._conn.execute("SELECT current_schema()").fetchone()[0])

    def _create_app_role(self, role: str) -> None:
        schema = self._schema()
        for statement in APP_ROLE_SQL.split(";\n"):
            if statement.strip():
                self._conn.execute(
                    pg_sql.SQL(statement.strip()).format(
                        role=pg_sql.Identifier(role), schema=pg_sql.Identifier(schema)
                    )
                )
        postgres_read_models.grant(self._conn, schema, role)

    def _migrate(self) -> None:
        """Bring an older schema to ``SCHEMA_VERSION``, in one transaction. Only the schema's
        owner can; for anyone else (the application role), or while another session holds the
        tables past the lock timeout, the schema stays as it is: every older version checks the
        same things, and the next open by the owner migrates it."""
        try:
            with self._conn.transaction():
                row = self._conn.execute(
                    f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version' FOR UPDATE"
                ).fetchone()
                if int(row[0]) >= SCHEMA_VERSION:
                    return  # another session has migrated it meanwhile
                for version in range(int(row[0]), SCHEMA_VERSION):
                    self._conn.execute(in_schema(MIGRATIONS[version], self._schema()))
                self._conn.execute(
                    f"UPDATE {META_TABLE} SET value = %s WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),),
                )
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.LockNotAvailable):
            return
        except psycopg.Error as e:
            raise translate(e, self.path) from e

    def _schema_version(self) -> int | None:
        with self._errors():
            row = self._conn.execute(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (META_TABLE,),
            ).fetchone()
            if row is None:
                return None
            row = self._conn.execute(
                f"SELECT value FROM {META_TABLE} WHERE key = 'schema_version'"
            ).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        """Close the connections of every thread (a read ahead under way ends first); later
        use raises ``StoreError``."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.shutdown(wait=True, cancel_futures=True)  # a read under way ends first
        self._sessions.close()

    def __enter__(self) -> PgLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _errors(self) -> Translated:
        return Translated(self.path, translate)

    @property
    def conn(self) -> QmarkConnection:
        """The connection for shared read code written with ``?`` placeholders."""
        return QmarkConnection(self._conn, self.path, self)

    def read_models(self) -> PgReadModels:
        """The read-model tables, in their own schema of this database, through this
        connection (so ``write()`` covers them)."""
        if self._read_models is None:
            self._read_models = PgReadModels(self._conn, self.path, self._flush_writes)
        return self._read_models

    def scratch_read_models(self) -> AbstractContextManager[SqliteReadModels]:
        """Read models in a temporary SQLite file, deleted on exit (time travel, ``replay
        --check``): nothing is written to the server, and no query spans both."""
        from ledger.store import sqlite_read_models

        return sqlite_read_models.scratch()

    @property
    def db(self) -> PgReadModels:
        """The read models (``read_models()``)."""
        return self.read_models()

    def _client_cursor(self) -> Any:
        """The connection's cursor for statements sent with the simple-query protocol."""
        if self._cc is None or self._cc.closed:
            self._cc = psycopg.ClientCursor(self._conn)
        return self._cc

    def _flush_writes(self) -> None:
        """Send the writes the open write transaction holds back (reads after them see them)."""
        if self._writes is not None:
            with self._errors():
                self._writes.flush()

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._errors():
            if self._writes is not None:
                self._writes.flush()  # a read inside the write transaction sees its writes
            return self._conn.execute(sql, tuple(params))

    # --- transactions ---------------------------------------------------------------------

    def write(self) -> _PgWriteTx:
        """``with ledger.write():`` one transaction holding the head row's lock."""
        return _PgWriteTx(self)

    def tip(self) -> Tip | None:
        return self._staged

    def stage_tip(self, tip: Tip) -> None:
        self._staged = tip

    # --- reading --------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        if self._origin is None:
            row = self._q("SELECT payload FROM events WHERE seq = 1").fetchone()
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

    def head(self) -> tuple[int, str]:
        """(size, hash of the last event); (0, 64 zeros) for an empty log."""
        row = self._q("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, ZERO_HASH) if row is None else (int(row[0]), str(row[1]))

    @property
    def size(self) -> int:
        return self.head()[0]

    def hash_at(self, seq: int) -> str:
        if seq == 0:
            return ZERO_HASH
        row = self._q("SELECT hash FROM events WHERE seq = %s", (seq,)).fetchone()
        if row is None:
            raise InputError(f"seq {seq} is not in the log (size {self.size})")
        return str(row[0])

    def event_at(self, seq: int) -> Event:
        from ledger.store.sqlite import row_to_event

        row = self._q(f"SELECT {ROW_COLUMNS} FROM events WHERE seq = %s", (seq,)).fetchone()
        if row is None:
            raise InputError(f"seq {seq} is not in the log (size {self.size})")
        return row_to_event(row)

    def body_at(self, seq: int) -> bytes:
        """The canonical body (SPEC §2.2) of event ``seq`` as stored."""
        row = self._q("SELECT body FROM events WHERE seq = %s", (seq,)).fetchone()
        if row is None:
            raise InputError(f"seq {seq} is not in the log (size {self.size})")
        return bytes(row[0])

    def seq_at_time(self, ts: str) -> int:
        row = self._q("SELECT MAX(seq) FROM events WHERE ts <= %s", (ts,)).fetchone()
        return int(row[0] or 0)

    def find_id(self, event_id: str) -> int | None:
        row = self._q("SELECT seq FROM events WHERE id = %s", (event_id,)).fetchone()
        return None if row is None else int(row[0])

    def _row_batches(
        self,
        from_seq: int,
        to_seq: int | None,
        where: str,
        params: Sequence[Any],
        batch: int,
        columns: str = ROW_COLUMNS,
    ) -> Iterator[list[Any]]:
        # Pages by seq range, not ``seq > last … LIMIT n`` alone: seq is contiguous, so a
        # range of ``batch`` seqs is one page, read by the primary key whatever the planner
        # knows of the table (with stale or no statistics it would scan the whole rest of the
        # log and sort it for every page). With a filter, a page is the first ``batch``
        # matching rows of a window of seqs. The end is the head when the read starts.
        head = self._q("SELECT seq FROM gl_head").fetchone()
        stop = min(
            int(head[0]) if head else 0, to_seq if to_seq is not None and to_seq >= 0 else MAX_SEQ
        )
        last = from_seq - 1
        window = batch * FILTER_WINDOW if where else batch
        limit = f" ORDER BY seq LIMIT {int(batch)}" if where else " ORDER BY seq"
        sql = f"SELECT {columns} FROM events WHERE seq > ? AND seq <= ?"
        sql += f" AND ({where}){limit}" if where else limit
        conn = self.conn
        while last < stop:
            high = min(stop, last + window)
            rows = conn.execute(sql, (last, high, *params)).fetchall()
            if rows:
                yield rows
            last = rows[-1][0] if len(rows) == batch and where else high

    def iter_rows(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        batch: int = PAGE,
        filter: Any = None,
    ) -> Iterator[Any]:
        """Stream raw event rows in seq order (``where`` is SQL with ``?`` placeholders;
        ``filter`` an event filter with ``run``, ``agent``, ``types``, ``since``, ``until``)."""
        where, params = _where(where, params, filter)
        for rows in self._row_batches(from_seq, to_seq, where, params, batch):
            yield from rows

    def row_at(self, seq: int) -> Any:
        """The stored row of event ``seq`` as it is, or None."""
        return self._q(f"SELECT {ROW_COLUMNS} FROM events WHERE seq = %s", (seq,)).fetchone()

    def last_before(self, seq: int) -> tuple[int, str, str] | None:
        """(seq, hash, ts) of the last stored event before ``seq``, or None."""
        row = self._q(
            "SELECT seq, hash, ts FROM events WHERE seq < %s ORDER BY seq DESC LIMIT 1", (seq,)
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]))

    def count_events(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        filter: Any = None,
    ) -> int:
        """How many events ``iter_events`` yields with the same range and filter."""
        where, params = _where(where, params, filter)
        extra = f" AND ({where})" if where else ""
        stop = to_seq if to_seq is not None else MAX_SEQ
        row = self.conn.execute(
            f"SELECT count(*) FROM events WHERE seq >= ? AND seq <= ?{extra}",
            (from_seq, stop, *params),
        ).fetchone()
        return int(row[0])

    def replay_events(self, *, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Any]:
        """Events ``from_seq..to_seq`` as ``EventRow``s. A range of ``READ_AHEAD`` events (a
        replay's batch) is read whole, and the next range of the same size is read meanwhile
        by another thread on a connection of its own (the server finds and sends those rows
        while the caller folds these); that thread reads only committed events, so not while
        this thread's write transaction is open."""
        span = 0 if to_seq is None else to_seq - from_seq + 1
        if self._in_write or not READ_AHEAD[0] <= span <= READ_AHEAD[1]:
            yield from self._replay_rows(from_seq, to_seq)
            return
        assert to_seq is not None
        events = self._ahead_rows(from_seq, to_seq)
        if events is None:
            events = list(self._replay_rows(from_seq, to_seq))
        if events and events[-1].seq == to_seq:
            head = self._q("SELECT seq FROM gl_head").fetchone()
            if head is not None and int(head[0]) > to_seq:
                self._read_ahead(to_seq + 1, to_seq + span)
        yield from events

    def _replay_rows(self, from_seq: int, to_seq: int | None) -> Iterator[Any]:
        from ledger.store.sqlite import EventRow

        for rows in self._row_batches(from_seq, to_seq, "", (), PAGE, REPLAY_COLUMNS):
            yield from (EventRow(*r) for r in rows)

    def _read_ahead(self, from_seq: int, to_seq: int) -> None:
        """Start reading ``from_seq..to_seq`` in the reading thread, for this thread. That
        thread only waits for the server's results (psycopg turns a result into rows when
        they are fetched): the rows are made by the thread that takes them, so the two do
        not take turns at the interpreter for it."""
        with self._reader_lock:
            if self._reader is None:
                self._sessions.refuse_if_closed()
                self._reader = ThreadPoolExecutor(1, thread_name_prefix="govledger-read-ahead")
            reader = self._reader
        self._ahead = ((from_seq, to_seq), reader.submit(self._results, from_seq, to_seq))

    def _results(self, from_seq: int, to_seq: int) -> list[Any]:
        """Cursors holding the results of ``from_seq..to_seq`` in pages, not yet fetched (run
        by the reading thread, on its own connection: committed events only)."""
        conn = self._conn
        sql = f"SELECT {REPLAY_COLUMNS} FROM events WHERE seq >= %s AND seq <= %s ORDER BY seq"
        return [
            conn.cursor().execute(sql, (low, min(to_seq, low + PAGE - 1)))
            for low in range(from_seq, to_seq + 1, PAGE)
        ]

    def _ahead_rows(self, from_seq: int, to_seq: int) -> list[Any] | None:
        """The events read ahead for this thread if they are those of this range (waiting
        for them if need be), else None; the reading is given up either way."""
        from ledger.store.sqlite import EventRow

        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != (from_seq, to_seq):
            return None
        try:
            return [EventRow(*r) for page in ahead[1].result() for r in page.fetchall()]
        except Exception:
            return None  # read again by this thread, where an error is reported

    def iter_events(
        self,
        *,
        from_seq: int = 1,
        to_seq: int | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        filter: Any = None,
    ) -> Iterator[Event]:
        from ledger.store.sqlite import row_to_event

        where, params = _where(where, params, filter)
        for rows in self._row_batches(from_seq, to_seq, where, params, PAGE):
            yield from map(row_to_event, rows)

    # --- keys -----------------------------------------------------------------------------

    def keys(self) -> list[dict[str, Any]]:
        cur = self._q(
            "SELECT name, key_id, role, agent, public_key, registered_seq, revoked_seq "
            "FROM keys ORDER BY registered_seq"
        )
        cols = [c.name for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def listen(self) -> _Listener:
        """A wake-up for followers: waits for the insert trigger's ``NOTIFY`` or a timeout."""
        return _Listener(self.url, self.path)

    # --- side tables ----------------------------------------------------------------------

    def ensure_side_table(self, name: str, columns: str) -> None:
        """Create the side table ``name`` when missing, in the ledger's schema, and let the
        application roles (the roles the owner let insert events) read it, not write it. A
        table already there is left as it is, so the application role can call this too."""
        present = self._q(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (name,),
        ).fetchone()
        if present is not None:
            return
        table = pg_sql.Identifier(name)
        try:
            with self._conn.transaction():
                self._conn.execute(
                    pg_sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                        table, pg_sql.SQL(columns)
                    )
                )
                readers = self._conn.execute(
                    "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
                    "WHERE table_schema = current_schema() AND table_name = 'events' "
                    "AND privilege_type = 'INSERT' AND grantee <> current_user "
                    "AND grantee <> 'PUBLIC'"
                ).fetchall()
                for (role,) in readers:
                    self._conn.execute(
                        pg_sql.SQL("GRANT SELECT ON {} TO {}").format(
                            table, pg_sql.Identifier(role)
                        )
                    )
        except pg_errors.InsufficientPrivilege as e:
            raise StoreError(
                f"{self.path}: cannot create the table {name} ({e.diag.message_primary}): the "
                "ledger's owner creates it"
            ) from e
        except psycopg.Error as e:
            raise translate(e, self.path) from e

    # --- checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, size: int, signer: str, root: str, note: str, created: str) -> None:
        """Keep a checkpoint the ledger signed (the same one again is kept once)."""
        self.put_checkpoint(size=size, signer=signer, root=root, note=note, created=created)

    def put_checkpoint(self, *, size: int, signer: str, root: str, note: str, created: str) -> None:
        """Keep a checkpoint the ledger signed (Ed25519 is deterministic: the note of a size
        and signer is always the same, so one already kept stays)."""
        with self._errors(), self._conn.transaction():
            self._conn.execute(
                "INSERT INTO checkpoints (size, signer, root, note, created) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (size, signer) DO NOTHING",
                (size, signer, root, note, created),
            )

    def latest_checkpoint(self, min_size: int = 0, max_size: int | None = None) -> str | None:
        """The note of the newest kept checkpoint of size at least ``min_size`` and at most
        ``max_size`` (default: the head), or None."""
        row = self._q(
            "SELECT note FROM checkpoints WHERE size >= %s AND size <= %s "
            'ORDER BY size DESC, signer COLLATE "C" LIMIT 1',
            (min_size, self.size if max_size is None else max_size),
        ).fetchone()
        return None if row is None else str(row[0])

    def checkpoints(self) -> list[dict[str, Any]]:
        cur = self._q("SELECT size, signer, root, note, created FROM checkpoints ORDER BY size")
        return [
            dict(zip(("size", "signer", "root", "note", "created"), r, strict=True))
            for r in cur.fetchall()
        ]

    # --- appending ------------------------------------------------------------------------

    def append(self, draft: Draft, *, signer: Signer) -> Event:
        return self.append_many([draft], signer=signer)[0]

    def append_many(
        self,
        drafts: Iterable[Draft],
        *,
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append a batch atomically: all events or none (SPEC §1.6)."""
        drafts = list(drafts)
        if not drafts:
            return []
        if len(drafts) == 1:
            pending = [prepare(drafts[0])]
        else:
            pending = [Prepared(d, None, f"event {i + 1}") for i, d in enumerate(drafts)]
        with self.write():
            return self.append_locked(pending, signer, progress)

    def append_locked(
        self,
        prepared: list[Prepared],
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append inside the open ``write()`` transaction (imports call it chunk by chunk)."""
        if not self._in_write:
            raise StoreError(f"{self.path}: append_locked outside a write transaction")
        return chaining.append_locked(_PgChain(self), prepared, signer, progress)

    def append_signed(self, rows: Sequence[Any]) -> None:
        """Inside ``write()``: rows signed elsewhere, as they are (``chaining.append_signed``)."""
        if not self._in_write:
            raise StoreError(f"{self.path}: append_signed outside a write transaction")
        chaining.append_signed(_PgChain(self), rows)

    # --- Merkle tree (RFC 9162) -------------------------------------------------------------

    def get_nodes(self, ids: Sequence[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """Every node of ``ids``: level 0 from ``events.hash``, levels below
        ``merkle.STORED_LEVEL`` from the leaves under them, the others from ``merkle_nodes``."""
        low = [n for n in ids if 0 < n[0] < merkle.STORED_LEVEL]
        leaves = sorted(
            {i for level, i in ids if level == 0}.union(*(merkle.leaves_under(*n) for n in low))
        )
        inner = [merkle.stored_key(*n) for n in ids if n[0] >= merkle.STORED_LEVEL]
        out: dict[merkle.NodeId, bytes] = {}
        rows: list[Any] = []
        if leaves:
            rows += self._q(
                "SELECT 0, seq - 1, hash FROM events WHERE seq = ANY(%s)",
                ([i + 1 for i in leaves],),
            ).fetchall()
        if inner:
            rows += self._q(
                "SELECT m.level, (m.closes >> m.level) - 1, m.hash FROM merkle_nodes m "
                "JOIN unnest(%s::bigint[], %s::int[]) AS w(c, l) ON m.closes = w.c AND m.level = w.l",
                ([c for c, _ in inner], [lv for _, lv in inner]),
            ).fetchall()
        for level, index, value in rows:
            h = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
            if len(h) != merkle.HASH_SIZE:
                raise StoreError(f"{self.path}: Merkle node ({level}, {index}) is malformed")
            out[int(level), int(index)] = h
        for n in low:
            try:
                out[n] = merkle.subtree_hash([out[0, i] for i in merkle.leaves_under(*n)])
            except KeyError:
                pass
        for n in ids:
            if n not in out:
                raise StoreError(f"{self.path}: Merkle node ({n[0]}, {n[1]}) is missing")
        return out

    def stored_nodes_from(self, key: tuple[int, int], limit: int) -> list[tuple[int, int, Any]]:
        """Up to ``limit`` stored nodes ``(closes, level, hash)`` at or after ``key``, in order."""
        rows = self._q(
            "SELECT closes, level, hash FROM merkle_nodes WHERE (closes, level) >= (%s, %s) "
            "ORDER BY closes, level LIMIT %s",
            (*key, limit),
        ).fetchall()
        return [(int(c), int(lv), h) for c, lv, h in rows]

    def get_node(self, level: int, index: int) -> bytes:
        return self.get_nodes([(level, index)])[level, index]

    def fetch_plan(self, plan: merkle.ProofPlan) -> list[bytes]:
        return plan.assemble(self.get_nodes(plan.node_ids))

    def root_at(self, size: int) -> bytes:
        hashes = self.fetch_plan(merkle.root_plan(size))
        return hashes[0] if hashes else merkle.EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.fetch_plan(merkle.inclusion_plan(index, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return self.fetch_plan(merkle.consistency_plan(size1, size2))


def _where(where: str, params: Sequence[Any], filter: Any) -> tuple[str, Sequence[Any]]:
    """``where`` and ``params`` with an event filter's conditions added (``?`` placeholders)."""
    if filter is None:
        return where, params
    parts = [f"({where})"] if where else []
    args = list(params)
    for column, value in (("run", filter.run), ("agent", filter.agent)):
        if value is not None:
            parts.append(f"{column} = ?")
            args.append(value)
    if filter.types is not None:
        parts.append(f"type IN ({', '.join('?' * len(filter.types))})" if filter.types else "false")
        args += list(filter.types)
    if filter.since is not None:
        parts.append("ts >= ?")
        args.append(filter.since)
    if filter.until is not None:
        parts.append("ts <= ?")
        args.append(filter.until)
    return " AND ".join(parts), args


class _Listener:
    """``LISTEN govledger_events`` on a connection of its own; calling it waits at most
    ``timeout`` seconds for a notification (only a wake-up: followers read by seq)."""

    def __init__(self, url: str, where: str) -> None:
        self.where = where
        self.conn = _connect(url)
        with Translated(where, translate):
            self.conn.execute("LISTEN govledger_events")

    def __call__(self, timeout: float) -> None:
        with Translated(self.where, translate):
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                pass

    def close(self) -> None:
        self.conn.close()


class _PgWriteTx:
    """One transaction in two round trips: ``BEGIN`` and the head lock in one message; the
    writes, buffered meanwhile, and ``COMMIT`` in the next (``_Writes``). The head read under
    the lock tells whether the tip kept from the last append is still the end of the log."""

    def __init__(self, ledger: PgLedger) -> None:
        self.ledger = ledger

    def append(
        self,
        drafts: Sequence[Draft | Prepared],
        *,
        signer: Signer,
        progress: Callable[[int], None] | None = None,
    ) -> list[Event]:
        """Append in this transaction (a single draft validated first, a batch's as chained)."""
        pending = [
            d
            if isinstance(d, Prepared)
            else prepare(d)
            if len(drafts) == 1
            else Prepared(d, None, f"event {i + 1}")
            for i, d in enumerate(drafts)
        ]
        return self.ledger.append_locked(pending, signer, progress) if pending else []

    def __enter__(self) -> _PgWriteTx:
        ledger = self.ledger
        if ledger._in_write:
            raise StoreError(f"{ledger.path}: a write transaction is already open")
        if not ledger._write_lock.acquire(timeout=DEFAULT_LOCK_TIMEOUT_MS / 1000):
            raise DatabaseLocked(f"{ledger.path}: the ledger is busy in another thread")
        try:
            with ledger._errors():
                # No parameters: the simple-query protocol, both statements in one message.
                cur = ledger._client_cursor()
                cur.execute("BEGIN; SELECT seq, hash, ts FROM gl_lock_head()")
                cur.nextset()
                row = cur.fetchone()
            if row is None:
                raise NotALedger(f"{ledger.path}: the ledger's head row (gl_head) is missing")
        except BaseException:
            self._rollback()
            ledger._write_lock.release()
            raise
        ledger._head = (int(row[0]), str(row[1]), str(row[2]))
        tip = ledger._tip
        if tip is None or (tip.size, tip.prev) != ledger._head[:2]:
            tip = ledger._tip = None
        ledger._staged = tip
        ledger._writes = _Writes(ledger._client_cursor())
        ledger._in_write = True
        return self

    def _rollback(self) -> None:
        conn = self.ledger._conn
        if conn.closed or conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        try:
            conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()  # the server's side ends with the connection

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        ledger = self.ledger
        staged, ledger._staged, ledger._tip = ledger._staged, None, None
        writes, ledger._writes = ledger._writes, None
        ledger._in_write = False
        try:
            if exc is None:
                assert writes is not None
                with ledger._errors():
                    writes.commit()
                ledger._tip = staged
        except BaseException:
            self._rollback()
            raise
        else:
            if exc is not None:
                self._rollback()
        finally:
            ledger._write_lock.release()
        if isinstance(exc, psycopg.Error):
            raise translate(exc, ledger.path) from exc


class _Writes:
    """The writes of one transaction, held back so that the last of them go out with
    ``COMMIT`` in one message (the simple-query protocol, which takes several statements but
    no parameters: psycopg binds the values client-side, as literals quoted by its own
    adapters). Rows added one after another to the same table are one ``INSERT`` (a batch
    signed in chunks still moves the head once). Past ``INSERT_ROWS`` held rows they go out
    on their own; so do they before any read inside the transaction (``flush``), so that it
    sees them."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.quote = Transformer.from_context(cursor).as_literal
        self.statements: list[bytes] = []
        self.head = ""
        self.values: list[bytes] = []

    def add(self, head: str, rows: Sequence[Sequence[Any]]) -> None:
        """Hold the ``rows`` of ``head VALUES (…), (…)``, in order."""
        if not rows:
            return
        if head != self.head:
            self._close()
            self.head = head
        quote = self.quote
        self.values += [b"(" + b", ".join([quote(v) for v in r]) + b")" for r in rows]
        if len(self.values) >= INSERT_ROWS:
            self.flush()

    def statement(self, sql: str, params: Sequence[Any]) -> None:
        """Hold one statement with ``%s`` parameters (bound by psycopg)."""
        self._close()
        self.statements.append(self.cursor.mogrify(sql, params).encode())

    def _close(self) -> None:
        if self.values:
            self.statements.append(self.head.encode() + b" VALUES " + b", ".join(self.values))
        self.head, self.values = "", []

    def flush(self) -> None:
        self._close()
        if self.statements:
            self._send([])

    def commit(self) -> None:
        self._close()
        self._send([b"COMMIT"])

    def _send(self, last: list[bytes]) -> None:
        query = b"; ".join(self.statements + last)
        self.statements = []
        self.cursor.execute(query)


class _PgChain(chaining.IndexLookups):
    """``chaining.ChainStore`` over a ``PgLedger``'s open write transaction: reads run at
    once (after the held writes), writes are held in its ``_Writes``."""

    def __init__(self, ledger: PgLedger) -> None:
        self.ledger = ledger
        assert ledger._writes is not None
        self.writes = ledger._writes

    def current_tip(self) -> Tip:
        ledger = self.ledger
        if ledger._staged is not None:
            return ledger._staged
        assert ledger._head is not None
        size, prev, ts = ledger._head
        frontier = ledger.get_nodes(merkle.range_nodes(0, size))
        return Tip(size, prev, ts, frontier, {})

    def stage_tip(self, tip: Tip) -> None:
        self.ledger._staged = tip

    MARK = "%s"

    def query(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.ledger._q(sql, params)

    def query_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise AssertionError("the PostgreSQL store holds its writes (write_index)")

    def write_index(
        self,
        nodes: list[tuple[int, int, bytes]],
        new_keys: list[tuple[Any, ...]],
        revoked: list[tuple[int, str]],
    ) -> None:
        self.writes.add("INSERT INTO merkle_nodes (closes, level, hash)", nodes)
        self.writes.add(
            "INSERT INTO keys (key_id, name, public_key, role, agent, registered_seq)", new_keys
        )
        for seq, kid in revoked:
            self.writes.statement("UPDATE keys SET revoked_seq = %s WHERE key_id = %s", (seq, kid))

    def first_logged_id(self, ids: Sequence[str]) -> tuple[str, int] | None:
        hit = self.ledger._q(
            "SELECT id, seq FROM events WHERE id = ANY(%s) ORDER BY seq LIMIT 1", (list(ids),)
        ).fetchone()
        return None if hit is None else (str(hit[0]), int(hit[1]))

    def insert_events(self, rows: list[list[Any]], bodies: list[bytes]) -> None:
        # One INSERT of the batch: the statement trigger checks its rows as a chain, each
        # against the one before it, and moves the head row once.
        self.writes.add(
            f"INSERT INTO events ({ROW_COLUMNS}, body)",
            [(*r, b) for r, b in zip(rows, bodies, strict=True)],
        )
