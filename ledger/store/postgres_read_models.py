"""The read-model tables in PostgreSQL: the ``ledger.store.base.ReadModels`` of a ``PgLedger``,
in their own schema of the ledger's database, reached through the ledger's connection (so a
write transaction covers both).

The schema is ``govledger_read`` for a ledger in ``public``, else ``<ledger schema>_read``; it
is created when first needed and appended to the connection's ``search_path``, so the
projections' unqualified standard SQL finds the tables (the ledger's own tables come first and
never share a name with a read-model table: ``create`` refuses one). Statements are written
with ``?`` placeholders and translated to psycopg's ``%s`` here (``?`` inside a quoted literal
is left alone). Column types follow the declarations: ``int`` is ``bigint``, ``str`` is
``text COLLATE "C"`` (compared and ordered by code point, as SQLite does), so a query gives the
same rows in the same order on both stores; a ``sum`` (``numeric`` in PostgreSQL) comes back as
an ``int``, as SQLite gives it.

Writers of the tables take a transaction-scoped advisory lock (the counterpart of SQLite's
``BEGIN IMMEDIATE``): two processes catching up never fold the same batch twice, and an
appender, which never takes it, is never blocked by a reader catching up. A transaction of its
own commits without waiting for the disk (``synchronous_commit = off``): the tables are derived
data, and a commit lost to a crash leaves them at an earlier batch, from which the next reading
command catches up. Inside the ledger's open write transaction (``tiers apply``) it is a
savepoint of that transaction. Its statements are pipelined; many rows at once (a replay's
batch) go by binary ``COPY`` (``COPY_ROWS``), through a staging table where they may replace
stored rows, and the tables a rebuild creates are analyzed once its first batch is in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from decimal import Decimal
from typing import Any

from ledger.errors import DatabaseLocked, LedgerError, StoreError
from ledger.store.base import TableSpec

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql as pg_sql
    from psycopg.adapt import Loader
except ImportError:  # pragma: no cover - the extra is not installed
    psycopg = None  # type: ignore[assignment]
    Loader = object  # type: ignore[assignment,misc]

DEFAULT_SCHEMA = "govledger_read"
LEDGER_TABLES = frozenset(
    {"govledger_meta", "gl_head", "events", "keys", "merkle_nodes", "checkpoints"}
)
"""The ledger's own tables (``postgres_schema``): no read-model table may take one's name."""
COPY_ROWS = 64
"""From this many rows, a write goes by ``COPY`` (binary) instead of one ``INSERT`` of arrays:
psycopg writes a row of COPY data in C, where it dumps an array element by element in Python,
and the server takes COPY rows in about half the time it takes to ``unnest`` arrays. Fewer rows
(the few of an incremental catch-up) stay one pipelined statement, with no round trip of their
own."""


def read_schema(ledger_schema: str) -> str:
    """The schema of the read models of a ledger kept in ``ledger_schema``."""
    return DEFAULT_SCHEMA if ledger_schema == "public" else f"{ledger_schema}_read"


ESC = "\uffff"
"""Text cannot hold NUL in PostgreSQL: stored read-model text has NUL as ``ESC 0`` and ``ESC``
itself as ``ESC 1`` (a noncharacter: neither appears in practice), undone when read."""
_ESC_UTF8 = ESC.encode()


def escape(text: str) -> str:
    """``text`` as the read-model tables store it (see ``ESC``)."""
    if "\x00" in text or ESC in text:
        return text.replace(ESC, ESC + "1").replace("\x00", ESC + "0")
    return text


def unescape(text: str) -> str:
    """``escape`` undone."""
    return text.replace(ESC + "0", "\x00").replace(ESC + "1", ESC)


def grant(conn: Any, ledger_schema: str, role: str) -> None:
    """Create the read-model schema of a ledger in ``ledger_schema`` and let the application
    ``role`` build and use its tables (those it creates, and those the owner creates)."""
    schema = pg_sql.Identifier(read_schema(ledger_schema))
    who = pg_sql.Identifier(role)
    conn.execute(pg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
    conn.execute(pg_sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(schema, who))
    conn.execute(
        pg_sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT ALL ON TABLES TO {}").format(
            schema, who
        )
    )


class _IntLoader(Loader):
    """``numeric`` (what ``sum`` of a ``bigint`` gives) as ``int`` when integral, as SQLite does."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        if text.lstrip("-").isdigit():
            return int(text)
        return float(Decimal(text))


class _TextLoader(Loader):
    """``text`` with ``escape`` undone."""

    def load(self, data: Any) -> Any:
        raw = bytes(data)
        text = raw.decode()
        return unescape(text) if _ESC_UTF8 in raw else text


def qmark(sql: str) -> str:
    """``sql`` with ``?`` placeholders outside quoted literals as ``%s``, and ``%`` as ``%%``."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append("%%" if ch == "%" else ch)
    return "".join(out)


class PgReadModels:
    """``ReadModels`` in the read-model schema of a ``PgLedger``'s database, over its connection."""

    def __init__(self, conn: Any, where: str, before: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self._where = where
        self._before = before
        """Called before each use: the ledger sends the writes its transaction holds back, so
        that read-model statements (and their savepoints) come after them, in order."""
        self.schema = ""
        self._ready = False
        self._path = ""
        self._lock_key = 0
        self._sql: dict[str, str] = {}
        self._insert_sql: dict[tuple[str, tuple[tuple[str, type], ...], bool], str] = {}
        self._own = False
        """In a transaction of its own (``transaction`` outside the ledger's): statements are
        pipelined, except a COPY (``_pipe``, ``_unpipe``)."""
        self._pipe: Any = None
        self._staged: set[str] = set()
        """Staging tables (``_stage``) made sure of in the current ``transaction``."""
        self._fresh: set[str] = set()
        """Tables created in the current ``transaction`` and not written since: empty, and
        seen by no other connection, so rows to replace go straight in (``_copy``)."""
        self._created: set[str] = set()
        """Tables created in the current ``transaction`` of its own."""
        self._unanalyzed: set[str] = set()
        """Tables created by the last ``transaction`` of its own that committed (``_analyze``)."""
        self._setup()

    # --- setup ----------------------------------------------------------------------------

    def _setup(self) -> None:
        """Create the schema when missing and put it last on the ``search_path``: once, when
        first used outside a transaction (inside one, a rollback would undo it: see ``_use``)."""
        conn = self._conn
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._errors():
            ledger_schema, path = conn.execute(
                "SELECT current_schema(), current_setting('search_path')"
            ).fetchone()
            self.schema = read_schema(str(ledger_schema))
            self._lock_key = _lock_key(self.schema)
            self._ensure_schema()
            quoted = pg_sql.Identifier(self.schema).as_string(conn)
            listed = [p.strip() for p in str(path).split(",") if p.strip()]
            if quoted not in listed and self.schema not in listed:
                listed.append(quoted)
            self._path = ", ".join(listed)
            conn.execute("SELECT set_config('search_path', %s, false)", (self._path,))
        self._ready = idle

    def _ensure_schema(self) -> None:
        found = self._conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
        ).fetchone()
        if found is None:
            try:
                with self._conn.transaction():
                    self._conn.execute(
                        pg_sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            pg_sql.Identifier(self.schema)
                        )
                    )
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema):
                pass  # another connection created it at the same moment (IF NOT EXISTS races)

    def _use(self, pipe: bool = True) -> None:
        """Before each use: the setup, until it has been done outside a transaction. Inside
        the ledger's write transaction (pipelined: no round trip of its own), the search path
        is set again, in case the transaction of the first setup was rolled back."""
        if self._before is not None:
            self._before()
        if pipe and self._own and self._pipe is None:
            # Pipelined: the server runs one statement while this process prepares the next;
            # a read waits for what was sent before it.
            self._pipe = self._conn.pipeline()
            self._pipe.__enter__()
        if self._ready:
            return
        if self._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            self._setup()
            return
        with self._errors():
            self._conn.execute("SELECT set_config('search_path', %s, false)", (self._path,))

    def _analyze(self) -> None:
        """Statistics for the tables the last transaction created (and filled: a rebuild's
        first batch), at the start of the next one, before its lookups. Without any, the
        planner takes a lookup of a few hundred keys (``IN (?, …)``, what the projections
        load before each batch) for most of the table and scans all of it: a rebuild's
        lookups would grow with the tables (a sequential scan of 60,000 rows per query at a
        million events). The first batch's rows are enough for it to use the primary key
        from then on; autovacuum keeps the statistics up later. A rebuild of one batch has
        no next transaction, and no need of them."""
        if not self._unanalyzed:
            return
        names, self._unanalyzed = sorted(self._unanalyzed), set()
        found = self._conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            (self.schema, names),
        ).fetchall()
        for (name,) in found:
            self._conn.execute(pg_sql.SQL("ANALYZE {}").format(self._name(str(name))))

    def _unpipe(self, exc: BaseException | None = None) -> None:
        """Leave pipeline mode (a COPY cannot run in it), waiting for what was sent: an error
        of a statement sent before is raised here (unless ``exc`` is already on its way)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.__exit__(None if exc is None else type(exc), exc, None)

    def _errors(self) -> Translated:
        return Translated(self._where)

    def _name(self, table: str) -> Any:
        return pg_sql.Identifier(self.schema, table)

    # --- ReadModels -----------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._use()
        text = self._sql.get(sql)
        if text is None:
            text = qmark(sql)
            if len(self._sql) < 4096:
                self._sql[sql] = text
        if self._fresh and not text.lstrip()[:6].upper().startswith("SELECT"):
            self._fresh.clear()  # a write of the caller's own: no table is known empty
        cur = self._conn.cursor()
        cur.adapters.register_loader("numeric", _IntLoader)
        cur.adapters.register_loader("text", _TextLoader)
        args = tuple(escape(p) if type(p) is str else p for p in params)
        with self._errors():
            return cur.execute(text, args)

    def exists(self, table: str) -> bool:
        self._use()
        with self._errors():
            row = self._conn.execute(
                "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
                (self.schema, table),
            ).fetchone()
        return row is not None

    def columns(self, table: str) -> tuple[str, ...]:
        self._use()
        with self._errors():
            rows = self._conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (self.schema, table),
            ).fetchall()
        return tuple(str(r[0]) for r in rows)

    def create(self, table: TableSpec) -> None:
        if table.name in LEDGER_TABLES:
            raise StoreError(f"{self._where}: read-model table {table.name!r} is a ledger table")
        self._use()
        if not self._ready:
            with self._errors():
                self._ensure_schema()
        name = self._name(table.name)
        cols = [
            pg_sql.SQL("{} {}").format(
                pg_sql.Identifier(c),
                pg_sql.SQL("bigint" if t is int else 'text COLLATE "C"'),
            )
            for c, t in table.columns
        ]
        pk = pg_sql.SQL(", ").join(pg_sql.Identifier(c) for c in table.pk)
        with self._errors():
            self._conn.execute(pg_sql.SQL("DROP TABLE IF EXISTS {}").format(name))
            self._conn.execute(
                pg_sql.SQL("CREATE TABLE {} ({}, PRIMARY KEY ({}))").format(
                    name, pg_sql.SQL(", ").join(cols), pk
                )
            )
            for index in table.indexes:
                self._conn.execute(
                    pg_sql.SQL("CREATE INDEX {} ON {} ({})").format(
                        pg_sql.Identifier(f"idx_{table.name}_{'_'.join(index)}"),
                        name,
                        pg_sql.SQL(", ").join(pg_sql.Identifier(c) for c in index),
                    )
                )
        self._insert_sql = {k: v for k, v in self._insert_sql.items() if k[0] != table.name}
        if self._conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self._fresh.add(table.name)
            if self._own:
                self._created.add(table.name)

    def drop(self, table: str) -> None:
        self._use()
        self._fresh.discard(table)
        with self._errors():
            self._conn.execute(pg_sql.SQL("DROP TABLE IF EXISTS {}").format(self._name(table)))

    def insert(
        self, table: TableSpec, rows: Iterable[Sequence[Any]], *, replace: bool = False
    ) -> None:
        """Values are coerced to the column's type, as SQLite's column affinity does. Fewer
        than ``COPY_ROWS`` rows go as one ``INSERT … SELECT FROM unnest(arrays)``, more by
        ``COPY`` (``_copy``). With ``replace``, an upsert whose later rows of one key win (as
        SQLite's ``INSERT OR REPLACE`` executed row by row); into a table this transaction
        created and has not written yet (the first batch of a rebuild), a plain COPY."""
        batch = rows if isinstance(rows, list) else list(rows)
        self._use(pipe=len(batch) < COPY_ROWS)
        if not batch:
            return
        fresh = table.name in self._fresh
        self._fresh.discard(table.name)
        if replace and len(batch) > 1:
            pk = [i for i, (c, _) in enumerate(table.columns) if c in table.pk]
            last: dict[tuple[Any, ...], Sequence[Any]] = {}
            for row in batch:
                k = tuple(row[i] for i in pk)
                last.pop(k, None)  # a key seen again takes the place of its last write
                last[k] = row
            batch = list(last.values())
        columns = [
            _ints(col) if kind is int else _texts(col)
            for (_, kind), col in zip(table.columns, zip(*batch, strict=True), strict=True)
        ]
        if len(batch) >= COPY_ROWS:
            self._copy(table, columns, replace and not fresh)
            return
        key = (table.name, table.columns, replace)
        sql = self._insert_sql.get(key)
        if sql is None:
            sql = self._insert_sql[key] = self._insert_statement(table, replace)
        with self._errors():
            self._conn.execute(sql, columns)

    def _insert_statement(self, table: TableSpec, replace: bool) -> str:
        cols = ", ".join(_ident(c) for c, _ in table.columns)
        arrays = ", ".join("%b::bigint[]" if t is int else "%b::text[]" for _, t in table.columns)
        aliases = ", ".join(f"c{i}" for i in range(len(table.columns)))
        sql = (
            f"INSERT INTO {_ident(self.schema)}.{_ident(table.name)} ({cols}) "
            f"SELECT {aliases} FROM unnest({arrays}) AS r({aliases})"
        )
        return sql + _on_conflict(table) if replace else sql

    def _copy(self, table: TableSpec, columns: list[list[Any]], replace: bool) -> None:
        """``columns`` (coerced, without two rows of one key) by binary ``COPY``: into the
        table, or with ``replace`` (rows that may be stored already) into a staging table
        (``_stage``), moved into the table by one ``INSERT … SELECT … ON CONFLICT``
        (pipelined in a transaction of its own: the server merges while this process goes
        on). Outside a transaction, in one of its own."""
        conn = self._conn
        self._unpipe()
        cols = ", ".join(_ident(c) for c, _ in table.columns)
        name = f"{_ident(self.schema)}.{_ident(table.name)}"
        kinds = ["int8" if t is int else "text" for _, t in table.columns]
        idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._errors(), conn.transaction() if idle else nullcontext():
            target = self._stage(table) if replace else name
            with conn.cursor().copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
                cp.set_types(kinds)
                write = cp.write_row
                for row in zip(*columns, strict=True):
                    write(row)
            if replace:
                self._use()
                # The staging table is emptied by the same statement (DELETE, not TRUNCATE:
                # a TRUNCATE would make the commit wait for the disk), the rest at commit.
                conn.execute(
                    f"WITH staged AS (DELETE FROM {target} RETURNING {cols}) "
                    f"INSERT INTO {name} ({cols}) SELECT {cols} FROM staged" + _on_conflict(table)
                )

    def _stage(self, table: TableSpec) -> str:
        """The session's temporary staging table for rows of ``table`` (same columns, no key),
        created if missing; named after the columns, so it always has the ones written."""
        spec = repr((self.schema, table.name, table.columns)).encode()
        name = f"pg_temp.gl_stage_{hashlib.sha256(spec).hexdigest()[:20]}"
        if name not in self._staged:
            cols = ", ".join(
                f"{_ident(c)} " + ("bigint" if t is int else 'text COLLATE "C"')
                for c, t in table.columns
            )
            self._conn.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({cols}) ON COMMIT DELETE ROWS"
            )
            if self._own:
                self._staged.add(name)  # forgotten when the transaction ends (a rollback drops it)
        return name

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction of read-model writes under the read models' advisory lock (a
        savepoint inside the caller's open transaction, if it has one)."""
        self._use()
        conn = self._conn
        nested = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                if nested:
                    yield
                    return
                conn.execute("SET LOCAL synchronous_commit = off")
                self._analyze()
                self._own = True
                try:
                    yield
                except BaseException as e:
                    self._unpipe(e)
                    raise
                finally:
                    self._own = False
                    self._staged.clear()
                    created, self._created = self._created, set()
                self._unpipe()
            if not nested:
                self._unanalyzed |= created  # committed
        except psycopg.Error as e:
            raise _translate(e, self._where) from e
        finally:
            self._fresh.clear()  # committed (others may write now) or rolled back


def _lock_key(schema: str) -> int:
    """The advisory lock of the read models in ``schema`` (a signed 64-bit number)."""
    digest = hashlib.sha256(f"govledger read models {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _on_conflict(table: TableSpec) -> str:
    """The upsert clause of ``table``: a row whose key is stored replaces it."""
    keys = ", ".join(_ident(c) for c in table.pk)
    rest = [c for c, _ in table.columns if c not in table.pk]
    if not rest:
        return f" ON CONFLICT ({keys}) DO NOTHING"
    sets = ", ".join(f"{_ident(c)} = EXCLUDED.{_ident(c)}" for c in rest)
    return f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_NONE = type(None)


def _ints(values: Sequence[Any]) -> list[int | None]:
    if set(map(type, values)) <= {int, _NONE}:
        return list(values)  # the common case, judged without a Python step per value
    return [v if v is None or type(v) is int else int(v) for v in values]


def _texts(values: Sequence[Any]) -> list[str | None]:
    if set(map(type, values)) <= {str, _NONE}:
        joined = "".join(filter(None, values))
        if "\x00" not in joined and ESC not in joined:
            return list(values)  # the common case, judged without a Python step per value
    return [_text(v) for v in values]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return value if "\x00" not in value and ESC not in value else escape(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return escape(str(value))


def _translate(e: Exception, where: str) -> StoreError:
    first = " ".join(str(e).split())
    if isinstance(e, pg_errors.LockNotAvailable | pg_errors.QueryCanceled):
        return DatabaseLocked(
            f"{where}: read models: locked by another process (waited past the lock timeout)"
        )
    if isinstance(e, pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
        return DatabaseLocked(f"{where}: read models: {first}")
    if isinstance(e, psycopg.OperationalError):
        return StoreError(f"{where}: read models: cannot reach PostgreSQL: {first}")
    return StoreError(f"{where}: read models: {first}")


class Translated:
    """``with``: psycopg errors leave as ledger errors, through ``translate(error, where)``
    (the read models' own by default; the ledger's store passes its own)."""

    def __init__(
        self, where: str, translate: Callable[[Exception, str], LedgerError] | None = None
    ) -> None:
        self.where = where
        self.translate = translate or _translate

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if isinstance(exc, psycopg.Error):
            raise self.translate(exc, self.where) from exc
