"""The PostgreSQL store: what only it has (TRUNCATE refused, the application role, server URLs).

The guarantees both stores keep (concurrent appends, rolled-back appends, raw SQL refused,
imports all or nothing, duplicate ids, lock timeouts) are in ``test_store_contract.py``.

Each test creates and drops its own database on the server named by ``GOVLEDGER_TEST_PG_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``). Without a server the tests skip,
saying how to run them; with ``GOVLEDGER_PG_REQUIRED=1`` (CI) they fail instead.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from ledger.crypto.keyfiles import KeyRing
from ledger.crypto.signing import event_hash
from ledger.event.canonical import canonical
from ledger.event.drafts import Draft
from ledger.store import open_store
from ledger.store.postgres import PgLedger
from ledger.store.sqlite import root_key_payload
from tests.conftest import pg_required, with_database

try:
    import psycopg
except ImportError:
    if pg_required():
        raise
    pytest.skip("PostgreSQL tests need pip install -e '.[postgres]'", allow_module_level=True)

ORIGIN = "test.example/pg"


def run(url: str, keys: Path, *args: str, input: str | None = None) -> Result:
    from ledger.cli import main

    return CliRunner().invoke(
        main, ["--db", url, "--keys", str(keys), *args], input=input, catch_exceptions=False
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


def stored_log(url: str) -> list[tuple[Any, ...]]:
    """Every stored byte of the log: rows with their bodies, Merkle nodes, the head."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT * FROM events ORDER BY seq").fetchall()
        nodes = conn.execute("SELECT * FROM merkle_nodes ORDER BY closes, level").fetchall()
        head = conn.execute("SELECT * FROM gl_head").fetchall()
    return [*rows, *nodes, *head]


def test_cli_init_append_import_verify_on_postgres(ready: tuple[str, Path], tmp_path: Path) -> None:
    url, keys = ready
    out = ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", '{"a": 1}'))
    assert out.stdout.startswith("seq 3 ")
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"type": "x.note", "payload": {"i": 1}}\n{"type": "x.note", "payload": {}}\n')
    ok(run(url, keys, "import", str(lines), "--signer", "rec"))
    report = json.loads(ok(run(url, keys, "verify", "--json")).stdout)
    assert report["ok"] and report["events"] == 5 and report["problems"] == []
    ok(run(url, keys, "checkpoint", "--signer", "root", "-o", str(tmp_path / "cp")))
    ok(run(url, keys, "prove", "4", "-o", str(tmp_path / "proof")))
    vkey = ok(run(url, keys, "keys", "vkey", "root")).stdout.strip()
    ok(run(url, keys, "verify-proof", str(tmp_path / "proof"), "--vkey", vkey))
    checked = json.loads(
        ok(run(url, keys, "verify", "--checkpoint", str(tmp_path / "cp"), "--json")).stdout
    )
    assert checked["ok"] and checked["checkpoint"]["size"] == 5
    exported = ok(run(url, keys, "export")).stdout.splitlines()
    assert [json.loads(line)["seq"] for line in exported] == [1, 2, 3, 4, 5]
    (tmp_path / "export.jsonl").write_text("\n".join(exported) + "\n")
    ok(run(url, keys, "verify", "--file", str(tmp_path / "export.jsonl")))
    logged = ok(run(url, keys, "log", "--type", "x.note", "--json")).stdout.splitlines()
    assert [json.loads(line)["seq"] for line in logged] == [3, 4, 5]


def test_body_is_stored_as_the_canonical_bytes(ready: tuple[str, Path]) -> None:
    url, _ = ready
    with PgLedger.open(url) as ledger:
        event = ledger.event_at(2)
        body = ledger.body_at(2)
    assert body == canonical(event.body())
    assert event_hash(body).hex() == event.hash


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE events",
        "TRUNCATE events CASCADE",
        "TRUNCATE merkle_nodes",
        "DELETE FROM gl_head",
        "INSERT INTO events SELECT 3, 'other-id', ts, type, agent, run, actor, payload, "
        "(SELECT hash FROM events WHERE seq = 2), key, repeat('a', 64), sig, body "
        "FROM events WHERE seq = 2",
        "INSERT INTO events SELECT 3, 'other-id', ts, type, agent, run, actor, payload, "
        "(SELECT hash FROM events WHERE seq = 2), key, hash, sig, body FROM events WHERE seq = 2",
    ],
    ids=[
        "truncate",
        "truncate-cascade",
        "truncate-merkle-nodes",
        "delete-head",
        "insert-hash-not-of-body",
        "insert-body-of-another-seq",
    ],
)
def test_raw_sql_cannot_truncate_or_forge_the_log(ready: tuple[str, Path], statement: str) -> None:
    url, keys = ready
    before = stored_log(url)
    with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error) as e:
        conn.execute(statement)
    assert "govledger:" in str(e.value)
    assert stored_log(url) == before
    assert json.loads(ok(run(url, keys, "verify", "--json")).stdout)["ok"]


def test_app_role_may_only_insert_and_read(admin: Any, pg_url: str, tmp_path: Path) -> None:
    role = f"gl_app_{secrets.token_hex(4)}"
    ring = KeyRing(tmp_path / "keys")
    root = ring.create("root")
    try:
        PgLedger.create(pg_url, origin=ORIGIN, root=root, app_role=role).close()
        as_app = pg_url.replace("postgres@", f"{role}@", 1)
        with PgLedger.open(as_app) as ledger:
            event = ledger.append(
                Draft("key.registered", root_key_payload(ring.create("rec"), "recorder")),
                signer=root,
            )
            assert event.seq == 2
            assert ledger.root_at(2) == ledger.root_at(ledger.size)
        refused = [
            "UPDATE events SET payload = '{}'",
            "DELETE FROM events",
            "TRUNCATE events",
            "ALTER TABLE events DISABLE TRIGGER USER",
            "ALTER TABLE events DISABLE TRIGGER events_no_update",
            "UPDATE gl_head SET seq = 0",
            "DROP TABLE events",
        ]
        for statement in refused:
            with (
                psycopg.connect(as_app, autocommit=True) as conn,
                pytest.raises(psycopg.errors.InsufficientPrivilege),
            ):
                conn.execute(statement)
        # The read models: the role builds them in their schema, and the owner's are its too.
        keys = tmp_path / "keys"
        listed = run(as_app, keys, "runs", "list", "--json")
        assert (listed.exit_code, listed.stdout) == (0, ""), listed.stderr
        assert run(pg_url, keys, "replay", "--json").exit_code == 0
        checked = run(as_app, keys, "replay", "--check")
        assert checked.exit_code == 0, checked.stdout + checked.stderr
        with open_store(pg_url) as ledger:
            assert ledger.size == 2
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {pg_url.rsplit('/', 1)[1]} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://postgres@127.0.0.1:1/test", "port 1 failed: Connection refused"),
        ("postgresql://postgres@127.0.0.1:notaport/test", 'invalid integer value "notaport"'),
        ("postgresql://postgres@127.0.0.1:5432/test?bogus=1", "invalid URI query parameter"),
    ],
    ids=["unreachable", "bad-port", "bad-parameter"],
)
def test_unusable_url_is_exit_3_in_one_line(tmp_path: Path, url: str, says: str) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "govledger"), "--db", url, "log"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: {url}: ")
    assert says in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_authentication_failure_is_exit_3_and_hides_the_password(admin: Any) -> None:
    url = with_database(admin.url, "test").replace("postgres@", "gl_nobody:secret@", 1)
    result = run(url, Path("unused"), "log")
    assert result.exit_code == 3
    assert "secret" not in result.stderr
    assert 'role "gl_nobody" does not exist' in result.stderr
    assert result.stderr.count("\n") == 1


def test_read_models_of_a_new_ledger_are_built_in_their_schema(ready: tuple[str, Path]) -> None:
    url, keys = ready
    listed = run(url, keys, "runs", "list", "--json")
    assert (listed.exit_code, listed.stdout) == (0, "")
    with psycopg.connect(url) as conn:
        (schema,) = conn.execute(
            "SELECT schemaname FROM pg_tables WHERE tablename = 'projection_meta'"
        ).fetchone()
    assert schema == "govledger_read"


@dataclass(frozen=True)
class _Filter:
    run: str | None = None
    agent: str | None = None
    types: tuple[str, ...] | None = None
    since: str | None = None
    until: str | None = None


def test_reads_checkpoints_and_write_transaction_of_the_store(ready: tuple[str, Path]) -> None:
    url, keys = ready
    signer = KeyRing(keys).load("rec")
    with PgLedger.open(url) as ledger:
        with ledger.write() as tx:
            events = tx.append([Draft("x.note", {"i": i}) for i in range(20)], signer=signer)
        assert [e.seq for e in events] == list(range(3, 23))
        assert ledger.row_at(22)[10] == events[-1].hash and ledger.row_at(23) is None
        assert ledger.last_before(22) == (21, events[-2].hash, events[-2].ts)
        assert ledger.count_events(filter=_Filter(types=("x.note",))) == 20
        assert ledger.count_events(from_seq=5, to_seq=6) == 2
        rows = list(ledger.iter_rows(filter=_Filter(types=("key.registered", "ledger.created"))))
        assert [r[0] for r in rows] == [1, 2]
        assert ledger.stored_nodes_from((0, 0), 10) == [(16, 4, ledger.get_node(4, 0))]
        assert ledger.latest_checkpoint() is None
        ledger.put_checkpoint(size=22, signer="root", root="r", note="n", created="c")
        assert ledger.latest_checkpoint(22) == "n" and ledger.latest_checkpoint(23) is None


def test_copy_between_sqlite_and_postgres_keeps_every_byte(
    ready: tuple[str, Path], tmp_path: Path
) -> None:
    url, keys = ready
    for i in range(18):
        ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", f'{{"i": {i}}}'))
    local = str(tmp_path / "copy.db")
    done = json.loads(ok(run(url, keys, "copy", url, local, "--json")).stdout)
    assert done["copied"] == 20 and done["size"] == 20
    exported = ok(run(url, keys, "export")).stdout
    assert ok(run(local, keys, "export")).stdout == exported
    ok(run(local, keys, "append", "x.note", "--signer", "rec", "--payload", "{}"))
    again = json.loads(ok(run(url, keys, "copy", local, url, "--json")).stdout)
    assert again["already"] == 20 and again["copied"] == 1
    assert ok(run(url, keys, "export")).stdout == ok(run(local, keys, "export")).stdout
    assert json.loads(ok(run(url, keys, "verify", "--json")).stdout)["events"] == 21
    ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", '{"pg": 1}'))
    ok(run(local, keys, "append", "x.note", "--signer", "rec", "--payload", '{"local": 1}'))
    refused = run(url, keys, "copy", local, url)
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: seq 22: ")


def test_follow_on_postgres_prints_new_events(ready: tuple[str, Path]) -> None:
    from tests.test_follow import check_follow

    url, keys = ready

    def append(i: int) -> None:
        ok(run(url, keys, "append", "x.note", "--signer", "rec", "--payload", f'{{"i": {i}}}'))

    check_follow(url, keys, append)
