"""The store contract: every guarantee of the log, run the same way on SQLite and PostgreSQL.

Each test gets a fresh ledger (``govledger init`` and a recorder key ``rec``, so the log holds
seqs 1 and 2) on each store: a SQLite file in ``tmp_path`` and a database of its own on the
PostgreSQL test server (see ``conftest.admin``: skipped without a server, failed under
``GOVLEDGER_PG_REQUIRED=1``). What only one store can do (PostgreSQL's application role, its
``TRUNCATE``) is tested in ``test_postgres.py``.
"""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.crypto.keyfiles import KeyRing
from ledger.errors import DuplicateEventId
from ledger.event.drafts import Draft
from ledger.store import open_store


@dataclass(frozen=True)
class Target:
    """A ledger under test: its ``--db`` (file path or URL), key directory and store kind."""

    db: str
    keys: Path
    kind: str

    def __call__(self, *args: str, input: str | None = None) -> Result:
        from ledger.cli import main

        return CliRunner().invoke(
            main,
            ["--db", self.db, "--keys", str(self.keys), *args],
            input=input,
            catch_exceptions=False,
        )

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result

    def verified(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.ok("verify", "--json", "--no-state").stdout)
        assert report["ok"] and report["problems"] == [], report
        return report

    def raw(self, statement: str) -> None:
        """Run one SQL statement on the store directly, as a writer bypassing govledger would."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.db, isolation_level=None)
            try:
                conn.execute(statement)
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.db, autocommit=True) as pg:
                pg.execute(statement)

    def stored(self) -> list[tuple[Any, ...]]:
        """Every stored byte of the log: event rows and Merkle nodes (and PostgreSQL's head)."""
        tables = ["events ORDER BY seq", "merkle_nodes ORDER BY closes, level"]
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.db)
            try:
                return [r for t in tables for r in conn.execute(f"SELECT * FROM {t}")]
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.db) as pg:
            return [r for t in [*tables, "gl_head"] for r in pg.execute(f"SELECT * FROM {t}")]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    db = str(tmp_path / "l.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    target = Target(db, tmp_path / "keys", request.param)
    target.ok("init", "--origin", "test.example/contract")
    target.ok("keys", "new", "rec", "--role", "recorder")
    yield target


APPENDER = textwrap.dedent(
    """
    import sys
    from ledger.crypto.keyfiles import KeyRing
    from ledger.event.drafts import Draft
    from ledger.store import open_store
    db, keys, who, n = sys.argv[1:]
    signer = KeyRing(keys).load("rec")
    with open_store(db) as ledger:
        for i in range(int(n)):
            ledger.append(Draft("x.note", {"who": who, "i": i}), signer=signer)
        ledger.append_many([Draft("x.note", {"who": who, "b": i}) for i in range(5)], signer=signer)
    """
)
"""One process appending ``n`` single events and then a batch of 5, through the library."""


def appenders(store: Target, count: int, n: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, store.db, str(store.keys), str(w), str(n)]
        )
        for w in range(count)
    ]


def test_processes_appending_at_once_make_one_contiguous_chain(store: Target) -> None:
    procs = appenders(store, 4, 15)
    assert [p.wait(timeout=180) for p in procs] == [0, 0, 0, 0]
    with open_store(store.db) as ledger:
        events = list(ledger.iter_events())
    assert [e.seq for e in events] == list(range(1, 2 + 4 * 20 + 1))
    for before, after in itertools.pairwise(events):
        assert after.prev == before.hash and after.ts >= before.ts
    for who in range(4):  # each process's batch is contiguous and in order
        batch = [e.seq for e in events if e.payload.get("who") == str(who) and "b" in e.payload]
        assert batch == list(range(batch[0], batch[0] + 5))
    assert store.verified()["events"] == 82


def test_a_follower_sees_every_seq_once_and_in_order_during_concurrent_appends(
    store: Target,
) -> None:
    exe = str(Path(sys.executable).parent / "govledger")
    follower = subprocess.Popen(
        [
            exe,
            "--db",
            store.db,
            "--keys",
            str(store.keys),
            "follow",
            "--from",
            "1",
            "--poll",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        procs = appenders(store, 3, 20)
        assert [p.wait(timeout=180) for p in procs] == [0, 0, 0]
        total = 2 + 3 * 25
        assert follower.stdout is not None
        seen = [json.loads(follower.stdout.readline())["seq"] for _ in range(total)]
    finally:
        follower.send_signal(signal.SIGINT)
        _, err = follower.communicate(timeout=60)
    assert seen == list(range(1, total + 1))
    assert follower.returncode == 0 and err == ""


def test_a_rolled_back_append_leaves_no_gap(store: Target) -> None:
    signer = KeyRing(store.keys).load("rec")
    with open_store(store.db) as ledger:
        with pytest.raises(RuntimeError, match="abandoned"), ledger.write() as tx:
            tx.append([Draft("x.note", {"n": i}) for i in range(3)], signer=signer)
            raise RuntimeError("abandoned")
        assert ledger.size == 2
        assert ledger.append(Draft("x.note", {"n": 9}), signer=signer).seq == 3
    assert store.verified()["events"] == 3


COLUMNS = "id, ts, type, agent, run, actor, payload, {prev}, key, {hash}, sig"
"""An ``INSERT INTO events SELECT`` copying row 2 under another id, ``prev`` and ``hash`` given."""


def forged_insert(kind: str, seq: str, *, prev: str = "hash", ts: str = "ts") -> str:
    body = ", body" if kind == "postgres" else ""
    cols = COLUMNS.format(prev=prev, hash="hash").replace("id, ts", f"'forged-id', {ts}")
    return f"INSERT INTO events SELECT {seq}, {cols}{body} FROM events WHERE seq = 2"


RAW = {
    "update": lambda kind: "UPDATE events SET payload = '{}' WHERE seq = 2",
    "delete": lambda kind: "DELETE FROM events WHERE seq = 2",
    "delete-all": lambda kind: "DELETE FROM events",
    "insert-wrong-seq": lambda kind: forged_insert(kind, "4"),
    "insert-wrong-prev": lambda kind: forged_insert(kind, "3", prev="prev"),
    "insert-ts-back": lambda kind: forged_insert(kind, "3", ts="'2000-01-01T00:00:00.000000Z'"),
    "insert-over-seq-2": lambda kind: forged_insert(kind, "2", prev="prev").replace(
        "INSERT INTO", "INSERT OR REPLACE INTO" if kind == "sqlite" else "INSERT INTO"
    ),
}
"""Writes that bypass govledger; each must be refused by the database itself."""


@pytest.mark.parametrize("name", sorted(RAW))
def test_raw_sql_cannot_change_gap_or_fork_the_log(store: Target, name: str) -> None:
    before = store.stored()
    with pytest.raises(Exception, match="govledger: "):
        store.raw(RAW[name](store.kind))
    assert store.stored() == before
    assert store.verified()["events"] == 2


def test_a_raw_insert_that_extends_the_head_is_refused_or_caught_by_verify(store: Target) -> None:
    """A copy of event 2 as event 3, with the right seq, prev and ts in its row: PostgreSQL also
    checks the stored body against the row (and refuses it); SQLite cannot hash in SQL, so the
    row goes in, and verify reports it at its seq."""
    forged = forged_insert(store.kind, "3", prev="(SELECT hash FROM events WHERE seq = 2)")
    if store.kind == "postgres":
        with pytest.raises(Exception, match="govledger: seq 3: "):
            store.raw(forged)
        assert store.verified()["events"] == 2
        return
    store.raw(forged)
    result = store("verify", "--json", "--no-state")
    assert result.exit_code == 1
    assert {p["seq"] for p in json.loads(result.stdout)["problems"]} == {3}


def test_an_import_is_all_or_nothing(store: Target, tmp_path: Path) -> None:
    store.ok("append", "x.note", "--signer", "rec", "--id", "taken", "--payload", "{}")
    before = store.stored()
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        '{"type": "x.note", "payload": {"i": 1}}\n'
        '{"type": "x.note", "payload": {"i": 2}}\n'
        '{"type": "x.note", "payload": {"i": 3}, "id": "taken"}\n'
    )
    result = store("import", str(lines), "--signer", "rec")
    assert result.exit_code == 2
    assert result.stderr == "error: line 3: id 'taken' is already in the log at seq 3\n"
    assert store.stored() == before


def test_a_duplicate_id_is_refused_naming_its_seq(store: Target) -> None:
    args = ("append", "x.note", "--signer", "rec", "--id", "once", "--payload", "{}")
    store.ok(*args)
    before = store.stored()
    result = store(*args)
    assert result.exit_code == 2
    assert result.stderr == "error: event: id 'once' is already in the log at seq 3\n"
    with open_store(store.db) as ledger, pytest.raises(DuplicateEventId, match="at seq 3"):
        ledger.append(Draft("x.note", {}, id="once"), signer=KeyRing(store.keys).load("rec"))
    assert store.stored() == before


def test_a_lock_held_past_the_timeout_is_exit_3_in_one_line(
    store: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVLEDGER_BUSY_TIMEOUT_MS", "200")
    before = store.stored()
    if store.kind == "sqlite":
        holder: Any = sqlite3.connect(store.db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        holder = psycopg.connect(store.db)
        holder.execute("SELECT * FROM gl_head FOR UPDATE")
    try:
        result = store("append", "x.note", "--signer", "rec", "--payload", "{}")
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("error: ") and "locked" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert store.stored() == before
    store.ok("append", "x.note", "--signer", "rec", "--payload", "{}")
