"""The PostgreSQL triggers that check the chain: a statement of several rows, bodies whose
payload names seq, prev or ts, and the migration of a version 1 schema (checked row by row) to
the current one (checked per statement).

Each test uses its own database on the server named by ``GOVLEDGER_TEST_PG_URL`` (see
``tests/conftest.py``).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from ledger.crypto.signing import event_hash
from ledger.event.canonical import canonical
from ledger.store.postgres import PgLedger
from ledger.store.postgres_schema import SCHEMA_VERSION
from tests.conftest import pg_required, with_database
from tests.test_postgres import ok, run

try:
    import psycopg
except ImportError:
    if pg_required():
        raise
    pytest.skip("PostgreSQL tests need pip install -e '.[postgres]'", allow_module_level=True)

ORIGIN = "test.example/pg-triggers"
COLUMNS = "seq, id, ts, type, agent, run, actor, payload, prev, key, hash, sig, body"

VERSION_1_HEAD = r"""
DROP TRIGGER events_lock_head ON events;
DROP TRIGGER events_extend_head ON events;
DROP TRIGGER events_move_head ON events;
DROP FUNCTION gl_events_lock_head();
CREATE OR REPLACE FUNCTION gl_events_extend_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    h record;
    b jsonb;
BEGIN
    -- The head row's lock serializes writers; the head itself is the last row, rows
    -- inserted earlier by the same statement included (gl_head is moved once per statement:
    -- moving it per row would grow its version chain within a large import).
    PERFORM 1 FROM gl_head FOR UPDATE;
    SELECT e.seq, e.hash, e.ts INTO h FROM events e ORDER BY e.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        SELECT 0::bigint AS seq, repeat('0', 64) AS hash, ''::text AS ts INTO h;
    END IF;
    IF NEW.seq IS DISTINCT FROM h.seq + 1 THEN
        RAISE EXCEPTION 'govledger: seq % does not extend the log (expected %)', NEW.seq, h.seq + 1
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.prev IS DISTINCT FROM h.hash THEN
        RAISE EXCEPTION 'govledger: seq %: prev is %, expected % (hash of seq %)',
            NEW.seq, NEW.prev, h.hash, h.seq USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.ts COLLATE "C" < h.ts THEN
        RAISE EXCEPTION 'govledger: seq %: ts % goes back (seq % is at %)', NEW.seq, NEW.ts, h.seq, h.ts
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.hash IS DISTINCT FROM encode(sha256('\x00'::bytea || NEW.body), 'hex') THEN
        RAISE EXCEPTION 'govledger: seq %: hash is not SHA-256 of the body', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    b := convert_from(NEW.body, 'UTF8')::jsonb;
    IF (b ->> 'seq') IS DISTINCT FROM NEW.seq::text OR (b ->> 'prev') IS DISTINCT FROM NEW.prev
            OR (b ->> 'ts') IS DISTINCT FROM NEW.ts THEN
        RAISE EXCEPTION 'govledger: seq %: the body''s seq, prev or ts differ from the row''s', NEW.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION gl_events_move_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE gl_head SET (seq, hash, ts) = (
        SELECT e.seq, e.hash, e.ts FROM events e ORDER BY e.seq DESC LIMIT 1);
    PERFORM pg_notify('govledger_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER events_extend_head BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION gl_events_extend_head();
CREATE TRIGGER events_move_head AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION gl_events_move_head();
ALTER FUNCTION gl_lock_head() SET search_path FROM CURRENT;
UPDATE govledger_meta SET value = '1' WHERE key = 'schema_version';
"""
"""A current schema taken back to version 1: the head checked by a per-row trigger."""


@pytest.fixture
def ready(pg_url: str, tmp_path: Path) -> tuple[str, Path]:
    """``govledger init`` on PostgreSQL and a recorder key ``rec`` (seq 2)."""
    keys = tmp_path / "keys"
    ok(run(pg_url, keys, "init", "--origin", ORIGIN))
    ok(run(pg_url, keys, "keys", "new", "rec", "--role", "recorder"))
    return pg_url, keys


def head_triggers(conn: Any) -> dict[str, tuple[bool, bool]]:
    """The triggers on ``events`` that call a ``gl_events_*`` function: name -> (per row,
    the function is SECURITY DEFINER)."""
    rows = conn.execute(
        "SELECT t.tgname, (t.tgtype & 1) = 1, p.prosecdef FROM pg_trigger t "
        "JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = 'events'::regclass "
        "AND p.proname LIKE 'gl_events_%' ORDER BY t.tgname"
    ).fetchall()
    return {name: (per_row, definer) for name, per_row, definer in rows}


def definer_paths(conn: Any) -> dict[str, list[str]]:
    """Every ``SECURITY DEFINER`` function of the ledger's schema -> its own settings."""
    rows = conn.execute(
        "SELECT p.proname, p.proconfig FROM pg_proc p WHERE p.prosecdef "
        "AND p.pronamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = current_schema()) "
        "ORDER BY p.proname"
    ).fetchall()
    return {name: config for name, config in rows}


PINNED = ["search_path=public, pg_temp"]
"""The ``search_path`` of a privileged function: the ledger's schema, then (explicitly last,
never first) the session's temporary tables."""
DEFINERS = {name: PINNED for name in ("gl_events_lock_head", "gl_events_move_head", "gl_lock_head")}


def schema_version(conn: Any) -> int:
    row = conn.execute("SELECT value FROM govledger_meta WHERE key = 'schema_version'").fetchone()
    return int(row[0])


def forged_over_head(url: str, body: dict[str, Any]) -> str:
    """An INSERT of event 2's row as seq 3 with ``body`` (its hash correct), prev and ts the
    head's."""
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT {COLUMNS} FROM events WHERE seq = 2").fetchone()
    data = canonical(body)
    values = [3, "forged-id", *row[2:8], row[10], row[9], event_hash(data).hex(), row[11], data]
    with psycopg.connect(url) as conn:
        one = ", ".join(["%s"] * 13)
        return psycopg.ClientCursor(conn).mogrify(
            f"INSERT INTO events ({COLUMNS}) VALUES ({one})", values
        )


def test_payload_naming_seq_prev_and_ts_is_appended_and_cannot_stand_for_the_body(
    ready: tuple[str, Path],
) -> None:
    url, keys = ready
    with psycopg.connect(url) as conn:
        head_hash, head_ts = conn.execute("SELECT hash, ts FROM gl_head").fetchone()
    payload = {
        "note": '"seq":3,"prev":"x","ts":"y"',
        "inner": {"seq": 3, "prev": head_hash, "ts": head_ts},
        "seq": 99,
    }
    # The top-level seq is 2 (another event's); only the payload names seq 3.
    with PgLedger.open(url) as ledger:
        body = {**ledger.event_at(2).body(), "payload": payload}
    before = conn_rows(url)
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error) as e:
        conn.execute(forged_over_head(url, body))
    assert "govledger: seq 3: the body's seq, prev or ts differ from the row's" in str(e.value)
    assert conn_rows(url) == before
    # A real event with that payload goes in, and the log verifies.
    ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", json.dumps(payload)))
    report = json.loads(ok(run(url, keys, "verify", "--json")).stdout)
    assert report["ok"] and report["events"] == 3


def conn_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [
            *conn.execute("SELECT seq, hash FROM events ORDER BY seq").fetchall(),
            *conn.execute("SELECT * FROM gl_head").fetchall(),
        ]


def insert(conn: Any, rows: list[Any]) -> None:
    """One INSERT statement of ``rows`` as they are."""
    one = f"({', '.join(['%s'] * 13)})"
    conn.execute(
        f"INSERT INTO events ({COLUMNS}) VALUES " + ", ".join([one] * len(rows)),
        [v for r in rows for v in r],
    )


def test_a_statement_of_several_rows_is_checked_as_a_chain(
    ready: tuple[str, Path], admin: Any
) -> None:
    """Rows of a real log inserted by hand into an empty ledger: with one missing, the statement
    is refused at the row after the gap; in full, it goes in and the head is its last row."""
    url, keys = ready
    for i in range(2):
        ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", f'{{"i": {i}}}'))
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY seq").fetchall()
    name = f"gl_test_{secrets.token_hex(6)}"
    admin.execute(f"CREATE DATABASE {name}")
    other = with_database(admin.url, name)
    try:
        PgLedger.open_or_create_empty(other).close()
        with psycopg.connect(other, autocommit=True) as conn:
            for kept, says in [
                ([0, 1, 3], "seq 4 does not extend the log (expected 3)"),
                ([0, 2], "seq 3 does not extend the log (expected 2)"),
                ([1], "seq 2 does not extend the log (expected 1)"),
            ]:
                with pytest.raises(psycopg.Error) as e:
                    insert(conn, [rows[i] for i in kept])
                assert f"govledger: {says}" in str(e.value)
                assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
                assert conn.execute("SELECT seq FROM gl_head").fetchone()[0] == 0
            with pytest.raises(psycopg.errors.UniqueViolation):  # the same row twice
                insert(conn, [rows[0], rows[0]])
            insert(conn, rows[:2])
            insert(conn, rows[2:])
            head = conn.execute("SELECT seq, hash, ts FROM gl_head").fetchone()
        assert head == (4, rows[3][10], rows[3][2])
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_version_1_schema_gets_the_statement_checks_on_open(ready: tuple[str, Path]) -> None:
    url, keys = ready
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(VERSION_1_HEAD)
        assert schema_version(conn) == 1
        assert head_triggers(conn) == {
            "events_extend_head": (True, True),
            "events_move_head": (False, True),
        }
        assert definer_paths(conn)["gl_lock_head"] != PINNED
    ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", "{}"))
    with psycopg.connect(url, autocommit=True) as conn:
        assert schema_version(conn) == SCHEMA_VERSION == 2
        assert head_triggers(conn) == {
            "events_extend_head": (True, False),
            "events_lock_head": (False, True),
            "events_move_head": (False, True),
        }
        assert definer_paths(conn) == DEFINERS
        assert conn.execute("SELECT seq FROM gl_head").fetchone()[0] == 3
    before = conn_rows(url)
    with PgLedger.open(url) as ledger:
        body = {**ledger.event_at(2).body(), "seq": 2}
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error) as e:
        conn.execute(forged_over_head(url, body).replace("VALUES (3,", "VALUES (4,"))
    assert "govledger: seq 4: " in str(e.value)
    assert conn_rows(url) == before
    report = json.loads(ok(run(url, keys, "verify", "--json")).stdout)
    assert report["ok"] and report["events"] == 3


def test_a_version_1_schema_opened_by_the_app_role_stays_as_it_is(
    admin: Any, pg_url: str, tmp_path: Path
) -> None:
    """The application role cannot migrate (it owns nothing): it appends through the version 1
    triggers; the owner's next open migrates."""
    from ledger.crypto.keyfiles import KeyRing
    from ledger.event.drafts import Draft

    role = f"gl_app_{secrets.token_hex(4)}"
    root = KeyRing(tmp_path / "keys").create("root")
    try:
        PgLedger.create(pg_url, origin=ORIGIN, root=root, app_role=role).close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(VERSION_1_HEAD)
        with PgLedger.open(pg_url.replace("postgres@", f"{role}@", 1)) as ledger:
            assert ledger.append(Draft("x.note", {}), signer=root).seq == 2
        with psycopg.connect(pg_url) as conn:
            assert schema_version(conn) == 1
        PgLedger.open(pg_url).close()
        with psycopg.connect(pg_url) as conn:
            assert schema_version(conn) == SCHEMA_VERSION
            assert conn.execute("SELECT seq FROM gl_head").fetchone()[0] == 2
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {pg_url.rsplit('/', 1)[1]} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {role}")


def stored_log(url: str) -> list[tuple[Any, ...]]:
    """Every stored byte of the log: its rows with their bodies, the Merkle nodes, the head."""
    with psycopg.connect(url) as conn:
        return [
            *conn.execute("SELECT * FROM events ORDER BY seq").fetchall(),
            *conn.execute("SELECT * FROM merkle_nodes ORDER BY closes, level").fetchall(),
            *conn.execute("SELECT * FROM gl_head").fetchall(),
        ]


def forged_second(url: str, prev: str) -> list[Any]:
    """Event 1's row as a seq 2 whose prev is ``prev`` (its body and hash consistent)."""
    with PgLedger.open(url) as ledger:
        body = {**ledger.event_at(1).body(), "seq": 2, "prev": prev, "id": "forged-id"}
    with psycopg.connect(url) as conn:
        row = list(conn.execute(f"SELECT {COLUMNS} FROM events WHERE seq = 1").fetchone())
    data = canonical(body)
    row[0], row[1], row[8], row[10], row[12] = 2, "forged-id", prev, event_hash(data).hex(), data
    return row


@pytest.fixture
def app_ledger(admin: Any, pg_url: str, tmp_path: Path) -> Any:
    """A ledger of one event made with an application role: (owner's URL, the role's URL)."""
    from ledger.crypto.keyfiles import KeyRing

    role = f"gl_app_{secrets.token_hex(4)}"
    root = KeyRing(tmp_path / "keys").create("root")
    try:
        PgLedger.create(pg_url, origin=ORIGIN, root=root, app_role=role).close()
        yield pg_url, pg_url.replace("postgres@", f"{role}@", 1)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {pg_url.rsplit('/', 1)[1]} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_temporary_tables_cannot_stand_for_the_head_or_the_log(app_ledger: Any) -> None:
    """The application role's own temporary ``gl_head`` and ``events`` (searched first for an
    unqualified table name) hold a fake head; a raw INSERT that extends only the fake is
    refused against the real log, and ``gl_lock_head()`` still locks the real head."""
    url, as_app = app_ledger
    with psycopg.connect(url) as conn:
        assert definer_paths(conn) == DEFINERS
    fake = "f" * 64
    row = forged_second(url, fake)
    before = stored_log(url)
    with psycopg.connect(as_app, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute(
            "CREATE TEMP TABLE gl_head (one boolean PRIMARY KEY DEFAULT true, seq bigint, "
            'hash text, ts text COLLATE "C")'
        )
        conn.execute("INSERT INTO gl_head (seq, hash, ts) VALUES (1, %s, %s)", (fake, row[2]))
        conn.execute(f"CREATE TEMP TABLE events (LIKE {schema}.events)")
        conn.execute(
            f"INSERT INTO events SELECT seq, id, ts, type, agent, run, actor, payload, prev, key, "
            f"%s, sig, body FROM {schema}.events WHERE seq = 1",
            (fake,),
        )
        assert conn.execute("SELECT hash FROM gl_head").fetchone()[0] == fake
        real = conn.execute(f"SELECT seq, hash, ts FROM {schema}.gl_head").fetchone()
        with conn.transaction():
            assert conn.execute("SELECT * FROM gl_lock_head()").fetchone() == real
        one = ", ".join(["%s"] * 13)
        with pytest.raises(psycopg.Error) as e:
            conn.execute(f"INSERT INTO {schema}.events ({COLUMNS}) VALUES ({one})", row)
    assert f"govledger: seq 2: prev is {fake}, expected {real[1]} (hash of seq 1)" in str(e.value)
    assert stored_log(url) == before


def test_operators_of_the_writers_own_schema_cannot_answer_the_checks(
    admin: Any, app_ledger: Any
) -> None:
    """A writer with a schema of its own, first on its ``search_path`` (before ``pg_catalog``),
    where ``=`` and ``<=`` on text always hold: the per-row check (run with the writer's
    rights and ``search_path``) still compares with the real operators."""
    url, as_app = app_ledger
    role = as_app.split("://", 1)[1].split("@", 1)[0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA gl_own AUTHORIZATION {role}")
    row = forged_second(url, "f" * 64)
    before = stored_log(url)
    with psycopg.connect(as_app, autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.execute(
            "CREATE FUNCTION gl_own.yes(text, text) RETURNS boolean LANGUAGE sql "
            "IMMUTABLE AS 'SELECT true'"
        )
        for op in ("=", "<=", "<>"):
            conn.execute(
                f"CREATE OPERATOR gl_own.{op} (LEFTARG = text, RIGHTARG = text, "
                "FUNCTION = gl_own.yes)"
            )
        conn.execute(f"SET search_path = gl_own, pg_catalog, {schema}")
        assert conn.execute("SELECT 'a'::text = 'b'::text").fetchone()[0] is True
        one = ", ".join(["%s"] * 13)
        with pytest.raises(psycopg.Error) as e:
            conn.execute(f"INSERT INTO {schema}.events ({COLUMNS}) VALUES ({one})", row)
    assert "govledger: seq 2: prev is ffff" in str(e.value)
    assert stored_log(url) == before


def test_a_ledger_in_a_schema_whose_name_needs_quotes(
    admin: Any, pg_url: str, tmp_path: Path
) -> None:
    """The functions name the ledger's schema as a quoted identifier: a mixed-case name with a
    space works, and its checks hold."""
    from urllib.parse import quote

    from ledger.crypto.keyfiles import KeyRing
    from ledger.event.drafts import Draft

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute('CREATE SCHEMA "Gl Ledger"')
    url = pg_url + "?options=" + quote('-csearch_path="Gl\\ Ledger"', safe="")
    root = KeyRing(tmp_path / "keys").create("root")
    with PgLedger.create(url, origin=ORIGIN, root=root) as ledger:
        assert ledger.append(Draft("x.note", {}), signer=root).seq == 2
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_schema()").fetchone()[0] == "Gl Ledger"
        assert definer_paths(conn) == {
            name: ['search_path="Gl Ledger", pg_temp'] for name in DEFINERS
        }
    row = forged_second(url, "f" * 64)
    row[0] = 3
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error) as e:
        conn.execute(f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join(['%s'] * 13)})", row)
    assert "govledger: seq 3: prev is ffff" in str(e.value)
