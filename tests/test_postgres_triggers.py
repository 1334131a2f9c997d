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
from click.testing import CliRunner, Result

from ledger.crypto.signing import event_hash
from ledger.event.canonical import canonical
from ledger.store.postgres import PgLedger
from ledger.store.postgres_schema import SCHEMA_VERSION
from tests.conftest import pg_required, with_database

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
UPDATE govledger_meta SET value = '1' WHERE key = 'schema_version';
"""
"""A current schema taken back to version 1: the head checked by a per-row trigger."""


def run(url: str, keys: Path, *args: str) -> Result:
    from ledger.cli import main

    return CliRunner().invoke(
        main, ["--db", url, "--keys", str(keys), *args], catch_exceptions=False
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


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
    ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", "{}"))
    with psycopg.connect(url, autocommit=True) as conn:
        assert schema_version(conn) == SCHEMA_VERSION == 2
        assert head_triggers(conn) == {
            "events_extend_head": (True, False),
            "events_lock_head": (False, True),
            "events_move_head": (False, True),
        }
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
