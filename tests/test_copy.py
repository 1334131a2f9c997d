"""``govledger copy SRC DST`` between SQLite ledgers: verified, resumable, prefix-only.

Copies to and from PostgreSQL are in ``test_postgres.py``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from tests.conftest import Cli


def run(cli: Cli, *args: str) -> Result:
    from ledger.cli import main

    return CliRunner().invoke(main, ["--keys", str(cli.keys), *args], catch_exceptions=False)


def note(cli: Cli, i: int) -> None:
    cli("append", "x.note", "--signer", "rec", "--payload", json.dumps({"i": i}))


def test_copy_makes_an_identical_log_that_verifies(ready: Cli, tmp_path: Path) -> None:
    for i in range(20):
        note(ready, i)
    dst = str(tmp_path / "copy.db")
    result = run(ready, "copy", str(ready.db), dst, "--json")
    assert result.exit_code == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["copied"] == 22 and done["already"] == 0 and done["size"] == 22
    source = ready("export").stdout
    assert run(ready, "--db", dst, "export").stdout == source
    assert run(ready, "--db", dst, "verify").exit_code == 0
    copied_keys = run(ready, "--db", dst, "keys", "list", "--json").stdout
    assert copied_keys == ready("keys", "list", "--json").stdout


def test_copy_resumes_where_the_destination_stops(ready: Cli, tmp_path: Path) -> None:
    dst = str(tmp_path / "copy.db")
    assert run(ready, "copy", str(ready.db), dst).exit_code == 0
    note(ready, 1)
    note(ready, 2)
    result = run(ready, "copy", str(ready.db), dst, "--json")
    assert json.loads(result.stdout)["already"] == 2
    assert json.loads(result.stdout)["copied"] == 2
    assert run(ready, "--db", dst, "export").stdout == ready("export").stdout


def test_copy_refuses_a_destination_that_is_not_a_prefix(ready: Cli, tmp_path: Path) -> None:
    note(ready, 1)
    dst = str(tmp_path / "copy.db")
    assert run(ready, "copy", str(ready.db), dst).exit_code == 0
    ready("append", "x.note", "--signer", "rec", "--payload", '{"here": 1}')
    run(ready, "--db", dst, "append", "x.note", "--signer", "rec", "--payload", '{"there": 1}')
    result = run(ready, "copy", str(ready.db), dst)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: seq 4: {dst} differs from {ready.db}: the destination is not a prefix of the "
        "source\n"
    )


def test_copy_refuses_a_source_that_does_not_verify(ready: Cli, tmp_path: Path) -> None:
    note(ready, 1)
    conn = sqlite3.connect(ready.db)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET payload = '{\"i\":2}' WHERE seq = 3")
    conn.commit()
    conn.close()
    dst = tmp_path / "copy.db"
    result = run(ready, "copy", str(ready.db), str(dst))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {ready.db}: the source does not verify: seq 3: ")
    assert not dst.exists()
