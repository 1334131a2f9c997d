"""``govledger replay --follow``: the stored read models caught up live while another process
appends, then stopped by SIGINT or SIGTERM with exit 0 and read models that pass
``replay --check``.

Real processes on both sides: the follower is the installed ``govledger`` command, the
appender a separate Python process appending a generated workload (agents, runs, tool calls,
violations) one small batch at a time. The PostgreSQL case runs once PostgreSQL keeps read
models; until then it is skipped, saying so.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import StoreError
from tests.conftest import Cli

APPENDER = textwrap.dedent(
    """
    import sys, time
    from ledger.crypto.keyfiles import KeyRing
    from ledger.sample import GOVERNOR, generate_drafts
    from ledger.store import open_store

    db, keys, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ring = KeyRing(keys)
    signers = {GOVERNOR: ring.load("root")}
    recorder = ring.load("rec")
    pending, role = [], None
    with open_store(db) as ledger:
        for r, draft in generate_drafts(n, 3, 7):
            if pending and (r != role or len(pending) == 7):
                ledger.append_many(pending, signer=signers.get(role, recorder))
                pending = []
                time.sleep(0.02)
            role = r
            pending.append(draft)
        ledger.append_many(pending, signer=signers.get(role, recorder))
        print(ledger.size)
    """
)


def start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def govledger(db: str, keys: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "govledger"), "--db", db, "--keys", str(keys), *args]


def check_follow_replay(db: str, keys: Path, stop: signal.Signals, n: int = 400) -> list[Any]:
    """Follow while an appender process adds ``n`` events; stop with ``stop`` once the read
    models report the head. The JSON lines printed."""
    follower = start(govledger(db, keys, "replay", "--follow", "--poll", "0.1", "--json"))
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["seq"] == 2  # ledger.created and the recorder key
        appender = start([sys.executable, "-c", APPENDER, db, str(keys), str(n)])
        out, err = appender.communicate(timeout=300)
        assert appender.returncode == 0, err
        head = int(out)
        lines = [first]
        while lines[-1]["seq"] < head:
            lines.append(json.loads(follower.stdout.readline()))
    finally:
        follower.send_signal(stop)
        rest, err = follower.communicate(timeout=60)
    assert follower.returncode == 0 and err == ""
    lines += [json.loads(line) for line in rest.splitlines()]
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs) and seqs[-1] == head == n + 2
    assert len(lines) > 2  # caught up several times while the appender ran
    assert sum(line["events"] for line in lines) == head
    return lines


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_replay_follow_keeps_sqlite_read_models_at_the_head(
    ready: Cli, stop: signal.Signals
) -> None:
    check_follow_replay(str(ready.db), ready.keys, stop)
    check = ready.json("replay", "--check")
    assert check["ok"] and check["events"] == 402
    assert {p["last_seq"] for p in check["projections"]} == {402}
    runs = ready.json_lines("runs", "list")
    assert runs  # the generated runs reached the read models


def test_replay_follow_prints_a_line_per_catch_up(ready: Cli) -> None:
    follower = start(govledger(str(ready.db), ready.keys, "replay", "--follow", "--poll", "0.1"))
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == (
            "read models at seq 2 (+2 events; rebuilt corrections, reliability, runs, tiers)\n"
        )
        ready("append", "x.note", "--signer", "rec", "--payload", "{}")
        assert follower.stdout.readline() == "read models at seq 3 (+1 event)\n"
    finally:
        follower.send_signal(signal.SIGINT)
        rest, err = follower.communicate(timeout=60)
    assert (rest, err, follower.returncode) == ("", "", 0)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--follow", "--check"), "--follow keeps the stored read models current"),
        (("--follow", "--at-seq", "1"), "--follow keeps the stored read models current"),
        (("--poll", "1"), "--poll goes with --follow"),
    ],
)
def test_replay_follow_refuses_other_modes(ready: Cli, args: tuple[str, ...], says: str) -> None:
    result = ready("replay", *args, ok=False)
    assert result.exit_code == 2
    assert says in result.stderr


def test_replay_follow_on_postgres(pg_url: str, tmp_path: Path) -> None:
    from tests import test_postgres

    db = pg_url
    keys = tmp_path / "keys"
    test_postgres.ok(test_postgres.run(db, keys, "init", "--origin", "test.example/pg"))
    test_postgres.ok(test_postgres.run(db, keys, "keys", "new", "rec", "--role", "recorder"))
    from ledger.store.postgres import PgLedger

    with PgLedger.open(db) as ledger:
        try:
            ledger.read_models()
        except StoreError as e:
            pytest.skip(f"PostgreSQL keeps no read models yet ({e})")
    check_follow_replay(db, keys, signal.SIGTERM)
    check = json.loads(
        test_postgres.ok(test_postgres.run(db, keys, "replay", "--check", "--json")).stdout
    )
    assert check["ok"] and check["events"] == 402
