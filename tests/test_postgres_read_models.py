"""Read models on PostgreSQL: every reading command answers the same bytes on both stores.

A demo log is built in SQLite once per module and copied into a fresh PostgreSQL database with
``govledger copy``; each command then runs on both and their outputs are compared byte for byte.
Writes (``tiers apply``, ``policy set``), rebuilds, tampering, locks and concurrent appends run
on fresh copies. The server is the one of ``tests/test_postgres.py`` (skipped without one,
failing with ``GOVLEDGER_PG_REQUIRED=1``).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.crypto.keyfiles import KeyRing
from ledger.errors import StoreError
from ledger.event.drafts import Draft
from ledger.store import open_store
from ledger.store.postgres import PgLedger
from ledger.store.postgres_read_models import escape, qmark, unescape
from projections.current import positions
from projections.driver import META, catch_up
from projections.projection import Table
from tests.conftest import connect_admin, with_database

try:
    import psycopg
except ImportError:  # test_postgres skips (or fails, when required) before this
    pytest.skip("PostgreSQL tests need pip install -e '.[postgres]'", allow_module_level=True)

CAREFUL = "planner-1"
SLOPPY = "coder-1"


def run(db: str, keys: Path, *args: str) -> Result:
    from ledger.cli import main

    return CliRunner().invoke(
        main, ["--db", db, "--keys", str(keys), *args], catch_exceptions=False
    )


@pytest.fixture(scope="module")
def fresh_database() -> Iterator[Callable[[], str]]:
    """A function making a fresh database on the server (each dropped after the module)."""
    admin = connect_admin()
    url = admin.url
    made: list[str] = []

    def fresh() -> str:
        name = f"gl_test_{secrets.token_hex(6)}"
        admin.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return with_database(url, name)

    yield fresh
    for name in made:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@dataclass(frozen=True)
class Logs:
    """The same demo log in a SQLite file and in a PostgreSQL database."""

    sqlite: str
    pg: str
    keys: Path

    def both(self, *args: str) -> tuple[Result, Result]:
        return run(self.sqlite, self.keys, *args), run(self.pg, self.keys, *args)


def _demo(where: Path) -> tuple[str, Path]:
    db, keys = str(where / "demo.db"), where / "keys"
    result = run(db, keys, "demo", "--events", "2000", "--seed", "7")
    assert result.exit_code == 0, result.stderr
    return db, keys


@pytest.fixture(scope="module")
def logs(
    fresh_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Logs]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVLEDGER_STATE", str(tmp_path_factory.mktemp("state")))
        db, keys = _demo(tmp_path_factory.mktemp("demo"))
        url = fresh_database()
        copied = run(db, keys, "copy", db, url)
        assert copied.exit_code == 0, copied.stderr
        yield Logs(db, url, keys)


@pytest.fixture
def copies(logs: Logs, fresh_database: Callable[[], str], tmp_path: Path) -> Logs:
    """Fresh copies of the demo log (SQLite and PostgreSQL), no read models built, to write to."""
    db, url = str(tmp_path / "copy.db"), fresh_database()
    for dst in (db, url):
        result = run(logs.sqlite, logs.keys, "copy", logs.sqlite, dst)
        assert result.exit_code == 0, result.stderr
    return Logs(db, url, logs.keys)


def _first_ts(logs: Logs, seq: int) -> str:
    out = run(logs.sqlite, logs.keys, "log", "--from", str(seq), "--limit", "1", "--json")
    return str(json.loads(out.stdout.splitlines()[0])["ts"])


READS = [
    ["runs", "list", "--json"],
    ["runs", "list"],
    ["runs", "list", "--non-compliant", "--limit", "5", "--json"],
    ["runs", "list", "--agent", SLOPPY, "--status", "completed", "--json"],
    ["runs", "list", "--at-seq", "900", "--json"],
    ["runs", "show", "run-7-0000004", "--json"],
    ["runs", "show", "run-7-0000004"],
    ["runs", "show", "run-7-0000004", "--at-seq", "150", "--json"],
    ["findings", "--json"],
    ["findings", "--severity", "critical", "--limit", "5"],
    ["findings", "--agent", SLOPPY, "--at-seq", "1500", "--json"],
    ["metrics", "--json"],
    ["metrics"],
    ["metrics", "--agent", SLOPPY, "--at-seq", "1000", "--json"],
    ["tiers", "show", "--json"],
    ["tiers", "show"],
    ["tiers", "show", "--at-seq", "1200", "--json"],
    ["tiers", "history", CAREFUL, "--json"],
    ["tiers", "history", SLOPPY],
    ["tiers", "explain", CAREFUL, "--json"],
    ["tiers", "compute", "--json"],
    ["policy", "show", "--json"],
    ["policy", "show"],
    ["policy", "show", "--at-seq", "2", "--json"],
    ["corrections", "--json"],
    ["corrections", "--at-seq", "1800"],
    ["replay", "--at-seq", "1000", "--json"],
    ["replay", "--check", "--json"],
    ["replay", "--check"],
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_reading_commands_answer_the_same_bytes_on_both_stores(logs: Logs, args: list[str]) -> None:
    on_sqlite, on_pg = logs.both(*args)
    assert on_sqlite.exit_code == 0, on_sqlite.stderr
    assert (on_pg.exit_code, on_pg.stderr) == (0, on_sqlite.stderr)
    assert on_pg.stdout == on_sqlite.stdout


def test_time_travel_by_time_answers_the_same_on_both_stores(logs: Logs) -> None:
    ts = _first_ts(logs, 1234)
    for args in (
        ["replay", "--as-of", ts, "--json"],
        ["metrics", "--as-of", ts, "--json"],
        ["tiers", "show", "--as-of", ts, "--json"],
    ):
        on_sqlite, on_pg = logs.both(*args)
        assert on_sqlite.exit_code == 0 and on_pg.exit_code == 0, on_pg.stderr
        assert on_pg.stdout == on_sqlite.stdout
        assert on_pg.stdout.strip()


def test_report_is_the_same_file_on_both_stores(logs: Logs, tmp_path: Path) -> None:
    (s, p) = (tmp_path / "s.html", tmp_path / "p.html")
    # Checkpoints are kept beside the log, not copied with it: the demo signed one at its head.
    signed = run(logs.pg, logs.keys, "checkpoint", "--signer", "root", "-o", str(tmp_path / "cp"))
    assert signed.exit_code == 0, signed.stderr
    for db, out in ((logs.sqlite, s), (logs.pg, p)):
        result = run(db, logs.keys, "report", "-o", str(out))
        assert result.exit_code == 0, result.stderr
    # The one line naming the store: the command that reproduces the report.
    reproduce = re.compile(r"<dt>reproduce with</dt><dd>.*?</dd>")
    assert reproduce.sub("", p.read_text()) == reproduce.sub("", s.read_text())
    assert "--db postgresql:" in p.read_text()


def test_read_models_live_in_their_own_schema(logs: Logs) -> None:
    run(logs.pg, logs.keys, "runs", "list", "--json")
    with psycopg.connect(logs.pg) as conn:
        tables = {
            schema: sorted(t for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)))
            for schema in ("public", "govledger_read")
        }  # fmt: skip
    assert tables["public"] == sorted(
        ["checkpoints", "events", "gl_head", "govledger_meta", "keys", "merkle_nodes"]
    )
    assert {"projection_meta", "runs", "findings", "tiers", "tier_runs"} <= set(
        tables["govledger_read"]
    )


def _without_seconds(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(result.stdout)
    out.pop("seconds")
    return out


def test_rebuild_and_dropped_read_models_give_the_same_answers(copies: Logs) -> None:
    before = copies.both("runs", "list", "--json")
    assert before[0].stdout == before[1].stdout
    on_sqlite, on_pg = copies.both("replay", "--json")
    assert _without_seconds(on_pg) == _without_seconds(on_sqlite)
    with psycopg.connect(copies.pg, autocommit=True) as conn:
        conn.execute("DROP SCHEMA govledger_read CASCADE")
    for args in (["runs", "list", "--json"], ["tiers", "show", "--json"], ["metrics", "--json"]):
        on_sqlite, on_pg = copies.both(*args)
        assert on_pg.exit_code == 0, on_pg.stderr
        assert on_pg.stdout == on_sqlite.stdout
    assert run(copies.pg, copies.keys, "replay", "--check").exit_code == 0


def test_replay_check_reports_a_row_edited_behind_govledgers_back(copies: Logs) -> None:
    run(copies.pg, copies.keys, "runs", "list")
    run(copies.sqlite, copies.keys, "runs", "list")
    with psycopg.connect(copies.pg, autocommit=True) as conn:
        conn.execute("UPDATE govledger_read.runs SET compliant = 1 - compliant WHERE run = %s",
                     ("run-7-0000004",))  # fmt: skip
    import sqlite3

    with sqlite3.connect(copies.sqlite) as conn:
        conn.execute("UPDATE runs SET compliant = 1 - compliant WHERE run = ?", ("run-7-0000004",))
    on_sqlite, on_pg = copies.both("replay", "--check")
    assert on_pg.exit_code == on_sqlite.exit_code == 1
    assert on_pg.stdout == on_sqlite.stdout
    assert "runs.runs run='run-7-0000004': compliant is" in on_pg.stdout


def _without_times(text: str) -> str:
    """JSON output with the fields that differ between two appends of the same change (ts,
    hash, id) blanked."""
    return re.sub(r'"(\w*ts|hash|id|since)": "[^"]*"', r'"\1": ""', text)


def test_tiers_apply_and_policy_set_record_the_same_events(copies: Logs, tmp_path: Path) -> None:
    compute = copies.both("tiers", "compute", "--json")
    assert compute[0].stdout == compute[1].stdout
    on_sqlite, on_pg = copies.both("tiers", "apply", "--signer", "root", "--json")
    assert on_sqlite.exit_code == on_pg.exit_code == 0, on_pg.stderr
    assert _without_times(on_pg.stdout) == _without_times(on_sqlite.stdout)
    again = copies.both("tiers", "apply", "--signer", "root", "--json")
    assert _without_times(again[1].stdout) == _without_times(again[0].stdout)
    policy = tmp_path / "p.toml"
    policy.write_text(run(copies.sqlite, copies.keys, "policy", "show").stdout)
    on_sqlite, on_pg = copies.both("policy", "set", str(policy), "--signer", "root", "--json")
    assert on_sqlite.exit_code == on_pg.exit_code == 0, on_pg.stderr
    assert _without_times(on_pg.stdout) == _without_times(on_sqlite.stdout)
    for args in (["tiers", "show", "--json"], ["policy", "show", "--json"]):
        on_sqlite, on_pg = copies.both(*args)
        assert _without_times(on_pg.stdout) == _without_times(on_sqlite.stdout)
    logged = copies.both("log", "--from", "2010", "--json")
    types = [[json.loads(line)["type"] for line in r.stdout.splitlines()] for r in logged]
    assert types[0] == types[1] and "policy.set" in types[1]
    assert run(copies.pg, copies.keys, "replay", "--check").exit_code == 0


def test_read_models_roll_back_with_the_write_transaction(copies: Logs) -> None:
    signer = KeyRing(copies.keys).load("root")
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db, to_seq=1000)
        with pytest.raises(RuntimeError), ledger.write() as tx:
            catch_up(ledger, db)
            assert positions(db)["runs"].last_seq == ledger.size
            tx.append([Draft("x.note", {})], signer=signer)
            raise RuntimeError("the caller fails after reading and appending")
        assert positions(db)["runs"].last_seq == 1000
        with ledger.write() as tx:
            catch_up(ledger, db)
            tx.append([Draft("x.note", {})], signer=signer)
        size = ledger.size
        assert positions(db)["runs"].last_seq == size - 1
        catch_up(ledger, db)
        assert positions(db)["runs"].last_seq == size


def test_read_models_first_used_in_a_write_transaction_that_rolls_back(copies: Logs) -> None:
    # The schema and the search path set up inside the transaction are undone with it: the
    # next transaction and the next read set them up again.
    with PgLedger.open(copies.pg) as ledger:
        with pytest.raises(RuntimeError), ledger.write():
            catch_up(ledger, ledger.read_models(), to_seq=100)
            raise RuntimeError("the caller fails")
        with ledger.write():
            db = ledger.read_models()
            catch_up(ledger, db, to_seq=200)
            assert positions(db)["runs"].last_seq == 200
        assert positions(db)["runs"].last_seq == 200
        catch_up(ledger, db)
        assert positions(db)["runs"].last_seq == ledger.size


def test_text_with_nul_and_the_escape_round_trips(copies: Logs) -> None:
    table = Table("x_text", (("k", str), ("v", str), ("n", int)), pk=("k",))
    odd = ["a\x00b", "\uffff", "\uffff0", "\x00\uffff1\x00", "plain", "100%?"]
    assert [unescape(escape(t)) for t in odd] == odd
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        with db.transaction():
            db.create(table)
            db.insert(table, [(t, t, i) for i, t in enumerate(odd)])
            db.insert(table, [("plain", "first", 1), ("plain", "second", True)], replace=True)
        rows = db.execute("SELECT k, v, n FROM x_text WHERE k <> ? ORDER BY n", ["plain"])
        assert [tuple(r) for r in rows] == [(t, t, i) for i, t in enumerate(odd) if t != "plain"]
        assert db.execute("SELECT v, n FROM x_text WHERE k = ?", ["a\x00b"]).fetchone() == (
            "a\x00b",
            0,
        )
        assert tuple(db.execute("SELECT v, n FROM x_text WHERE k = 'plain'").fetchone()) == (
            "second",
            1,
        )
        assert db.execute("SELECT '?', CAST(? AS text) || '%'", ["x"]).fetchone() == ("?", "x%")
        assert db.execute("SELECT sum(n) FROM x_text").fetchone() == (0 + 1 + 2 + 3 + 5 + 1,)
        assert db.columns("x_text") == ("k", "v", "n")
        db.drop("x_text")
        assert not db.exists("x_text") and db.columns("x_text") == ()
        with pytest.raises(StoreError, match="ledger table"):
            db.create(Table("events", (("seq", int),), pk=("seq",)))


def test_qmark_leaves_quoted_question_marks_alone() -> None:
    assert qmark("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE '%a'") == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE '%%a'"
    )


def test_read_models_locked_past_the_timeout_is_exit_3_in_one_line(
    copies: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        with db.transaction():  # holds the read models' lock: another writer waits for it
            monkeypatch.setenv("GOVLEDGER_BUSY_TIMEOUT_MS", "300")
            result = run(copies.pg, copies.keys, "runs", "list")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "read models" in result.stderr and "locked" in result.stderr


def test_meta_table_is_created_once(copies: Logs) -> None:
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db, to_seq=10)
        assert db.exists(META.name) and positions(db)["runs"].last_seq == 10


_APPENDER = textwrap.dedent(
    """
    import sys
    from ledger.crypto.keyfiles import KeyRing
    from ledger.event.drafts import Draft
    from ledger.store import open_store
    url, keys, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signer = KeyRing(keys).load("root")
    ledger = open_store(url)
    for i in range(n):
        ledger.append(Draft("x.note", {"i": i}, agent="planner-1", run="run-7-0000004"),
                      signer=signer)
    ledger.close()
    """
)
_READER = textwrap.dedent(
    """
    import sys
    from ledger.store import open_store
    from projections.driver import catch_up
    url, rounds = sys.argv[1], int(sys.argv[2])
    ledger = open_store(url)
    db = ledger.read_models()
    for _ in range(rounds):
        catch_up(ledger, db, batch=7)
    ledger.close()
    """
)


def test_concurrent_appends_and_readers_neither_deadlock_nor_apply_twice(copies: Logs) -> None:
    env = {**os.environ, "GOVLEDGER_BUSY_TIMEOUT_MS": "20000"}
    procs = [
        subprocess.Popen([sys.executable, "-c", _APPENDER, copies.pg, str(copies.keys), "40"],
                         env=env, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([sys.executable, "-c", _READER, copies.pg, "15"],
                         env=env, stderr=subprocess.PIPE, text=True),
        subprocess.Popen([sys.executable, "-c", _READER, copies.pg, "15"],
                         env=env, stderr=subprocess.PIPE, text=True),
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    check = run(copies.pg, copies.keys, "replay", "--check", "--json")
    assert check.exit_code == 0, check.stdout
    assert json.loads(check.stdout)["ok"] is True
    with open_store(copies.pg) as ledger:
        size = ledger.size
        assert all(p.last_seq <= size for p in positions(ledger.read_models()).values())
    shown = run(copies.pg, copies.keys, "runs", "show", "run-7-0000004", "--json")
    assert shown.exit_code == 0, shown.stderr


def test_demo_builds_its_ledger_in_postgresql(
    logs: Logs, fresh_database: Callable[[], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database()
    name = url.rsplit("/", 1)[1]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GOVLEDGER_KEYS")
    from ledger.cli import main

    result = CliRunner().invoke(
        main, ["--db", url, "demo", "--events", "2000", "--seed", "7"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    assert f"saved to {name}.checkpoint" in result.stdout
    assert (tmp_path / f"{name}.checkpoint").is_file() and (tmp_path / f"{name}.keys").is_dir()
    keys = tmp_path / f"{name}.keys"
    # Same seed, same story: the tiers and findings the SQLite demo has (times aside).
    for args in (["tiers", "show", "--json"], ["findings", "--json"]):
        on_pg = run(url, keys, *args)
        assert on_pg.exit_code == 0, on_pg.stderr
        on_sqlite = run(logs.sqlite, logs.keys, *args)
        assert _without_times(on_pg.stdout) == _without_times(on_sqlite.stdout)
    again = CliRunner().invoke(main, ["--db", url, "demo"], catch_exceptions=False)
    assert again.exit_code == 2 and "already holds a ledger" in again.stderr


def test_the_gate_and_lessons_answer_the_same_from_either_store(logs: Logs) -> None:
    from ledger.recording.gate import current, judge
    from ledger.recording.lessons import lessons_of
    from ledger.store.sqlite import Ledger

    asks = [
        (CAREFUL, "fs.read", "read", None),
        (SLOPPY, "fs.delete", "delete", "run-7-0000004"),
        ("nobody", "fs.read", "read", None),
        (CAREFUL, "payments.charge", "payment", "run-7-0000001"),
    ]
    answers = []
    for ledger in (Ledger.open(logs.sqlite), PgLedger.open(logs.pg)):
        with ledger:
            db = current(ledger)
            answers.append(
                (
                    [judge(db, *ask) for ask in asks],
                    [lessons_of(db, a) for a in (CAREFUL, SLOPPY)],
                )
            )
    assert answers[1] == answers[0]
    assert not answers[1][0][2].allowed


def _contents(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model table's rows in primary-key order (``projection_meta`` included)."""
    from projections.registry import default_projections

    tables = [META, *(t for p in default_projections() for t in p.tables)]
    out: dict[str, list[tuple[Any, ...]]] = {}
    for t in tables:
        cols = ", ".join(f'"{c}"' for c, _ in t.columns)
        order = ", ".join(f'"{c}"' for c in t.pk)
        out[t.name] = [
            tuple(r) for r in db.execute(f"SELECT {cols} FROM {t.name} ORDER BY {order}")
        ]
    return out


@pytest.mark.parametrize("copy_rows", [1, 10**9], ids=["every write by COPY", "no COPY"])
def test_rebuild_by_copy_or_insert_gives_the_rows_sqlite_gives(
    copies: Logs, copy_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full rebuild and an incremental catch-up in small batches (rows of one run written
    again batch after batch, merged through the staging table) store the same rows as SQLite,
    whether every write goes by COPY or none does."""
    from ledger.store import postgres_read_models

    monkeypatch.setattr(postgres_read_models, "COPY_ROWS", copy_rows)
    with open_store(copies.sqlite) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db, rebuild=True)
        expected = _contents(db)
    assert sum(map(len, expected.values())) > 500
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db, rebuild=True)
        assert _contents(db) == expected
        catch_up(ledger, db, rebuild=True, batch=97)
        assert _contents(db) == expected
        # Outside a transaction of the read models, each write is a transaction of its own.
        table = Table("x_rows", (("k", str), ("n", int)), pk=("k",))
        db.create(table)
        db.insert(table, [("a", 1), ("b", "2")])
        db.insert(table, [("a", 3), ("c", True), ("a", 4)], replace=True)
        assert [tuple(r) for r in db.execute("SELECT k, n FROM x_rows ORDER BY k")] == [
            ("a", 4),
            ("b", 2),
            ("c", 1),
        ]
        with pytest.raises(StoreError, match="x_rows"):
            db.insert(table, [("b", 5)])
        db.insert(table, [("b", 6)], replace=True)
        assert db.execute("SELECT n FROM x_rows WHERE k = 'b'").fetchone() == (6,)


def test_rows_to_replace_in_a_table_created_by_the_same_transaction(
    copies: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table this transaction created is written by a plain COPY once (later rows of one
    key winning), then by merges; a write of the caller's own, or a new transaction, means
    the table may hold rows, so it is merged into."""
    from ledger.store import postgres_read_models

    monkeypatch.setattr(postgres_read_models, "COPY_ROWS", 1)
    table = Table("x_fresh", (("k", str), ("n", int)), pk=("k",))

    def stored() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in db.execute("SELECT k, n FROM x_fresh ORDER BY k")]

    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        with db.transaction():
            db.create(table)
            db.insert(table, [("a", 1), ("b", 2), ("a", 3)], replace=True)
            db.insert(table, [("a", 4), ("c", 5)], replace=True)
        assert stored() == [("a", 4), ("b", 2), ("c", 5)]
        with db.transaction():
            db.create(table)
            db.execute("INSERT INTO x_fresh (k, n) VALUES (?, ?)", ["a", 6])
            db.insert(table, [("a", 7)], replace=True)
        assert stored() == [("a", 7)]
        with db.transaction():
            db.insert(table, [("a", 8), ("b", 9)], replace=True)
        assert stored() == [("a", 8), ("b", 9)]
        with pytest.raises(RuntimeError), db.transaction():
            db.create(table)
            raise RuntimeError("rolled back: the table and its rows stay as they were")
        db.insert(table, [("b", 10)], replace=True)
        assert stored() == [("a", 8), ("b", 10)]


def test_a_rebuild_leaves_statistics_for_the_planner(copies: Logs) -> None:
    """The tables a rebuild creates are analyzed once its first batch is in, when the next
    begins: without statistics, the planner scans a whole table for each lookup of a batch's
    keys."""
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db, rebuild=True, batch=500)
    with psycopg.connect(copies.pg, autocommit=True) as conn:
        tables = dict(
            conn.execute(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = 'govledger_read'"
            ).fetchall()
        )
    assert "runs" in tables and "tier_runs" in tables
    assert [t for t, analyzed in tables.items() if not analyzed] == []


def test_a_replay_reads_the_next_batch_ahead_to_the_rows_sqlite_gives(
    copies: Logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches read ahead by another thread give the rows SQLite gives; inside a write
    transaction nothing is read ahead (that thread would not see its uncommitted events)."""
    from ledger.store import postgres

    monkeypatch.setattr(postgres, "READ_AHEAD", (50, 1000))
    with open_store(copies.sqlite) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db)
        expected = _contents(db)
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db, rebuild=True, batch=97)
        assert ledger._reader is not None  # the next batches were read ahead
        assert _contents(db) == expected
        assert [e.seq for e in ledger.replay_events(from_seq=1, to_seq=60)] == list(range(1, 61))
        span, results = ledger._ahead
        assert span == (61, 120) and len(results.result()) == 1  # one page, being read
        assert [e.seq for e in ledger.replay_events(from_seq=61, to_seq=120)] == list(
            range(61, 121)
        )
        assert ledger._ahead[0] == (121, 180)
        # Another range than the one read ahead is read as asked.
        assert [e.seq for e in ledger.replay_events(from_seq=1, to_seq=70)] == list(range(1, 71))
    signer = KeyRing(copies.keys).load("root")
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db, rebuild=True, to_seq=1000, batch=97)
        with ledger.write() as tx:
            tx.append([Draft("x.note", {"i": i}) for i in range(300)], signer=signer)
            ahead = ledger._ahead  # the reading left from the catch-up to 1000
            catch_up(ledger, db, batch=97)
            assert ledger._ahead is ahead  # nothing read ahead, nor taken
            size, last_hash = ledger.head()
            for p in positions(db).values():
                assert (p.last_seq, p.last_hash) == (size, last_hash), p.name
        assert positions(db)["runs"].last_seq == ledger.size


_KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from ledger.store import open_store, postgres_read_models
    from projections.driver import catch_up
    url, when, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
    postgres_read_models.COPY_ROWS = 1
    real = postgres_read_models.PgReadModels._copy
    seen = 0

    def copy(self, table, columns, replace):
        global seen
        seen += 1
        if when == "before" and seen == copies:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-transaction, before this COPY
        real(self, table, columns, replace)
        if when == "after" and seen == copies:
            os.kill(os.getpid(), signal.SIGKILL)  # its rows sent, the merge pipelined, no commit

    postgres_read_models.PgReadModels._copy = copy
    ledger = open_store(url)
    catch_up(ledger, ledger.read_models(), rebuild=True, batch=150)
    """
)


@pytest.mark.parametrize(("when", "copies_before"), [("before", 40), ("after", 90)])
def test_a_rebuild_killed_midway_is_caught_up_to_the_rows_sqlite_gives(
    copies: Logs, when: str, copies_before: int
) -> None:
    """A process killed in the middle of a rebuild (between two COPYs of one transaction, or
    after a COPY whose merge was sent but not committed) leaves the batches it committed; the
    next reader catches up from there to the same rows as SQLite, and ``replay --check``
    agrees."""
    with open_store(copies.sqlite) as ledger:
        db = ledger.read_models()
        catch_up(ledger, db)
        expected = _contents(db)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED, copies.pg, when, str(copies_before)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    with PgLedger.open(copies.pg) as ledger:
        db = ledger.read_models()
        left = positions(db)
        assert left and 0 < min(p.last_seq for p in left.values()) < ledger.size
        catch_up(ledger, db)
        assert _contents(db) == expected
    check = run(copies.pg, copies.keys, "replay", "--check")
    assert check.exit_code == 0, check.stdout
