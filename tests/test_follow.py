"""``govledger follow``: events printed as they are appended, read by seq, until interrupted.

The PostgreSQL follower (woken by ``LISTEN/NOTIFY``) is tested in ``test_postgres.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Cli


def follow_process(db: str, keys: Path, *args: str) -> subprocess.Popen[str]:
    exe = str(Path(sys.executable).parent / "govledger")
    return subprocess.Popen(
        [exe, "--db", db, "--keys", str(keys), "follow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_follow(db: str, keys: Path, append: Callable[[int], None]) -> None:
    """Follow from seq 2, append two events, read them, interrupt: exit 0, nothing on stderr."""
    proc = follow_process(db, keys, "--from", "2", "--poll", "0.1")
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["seq"] == 2
        append(1)
        append(2)
        seen = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [e["seq"] for e in seen] == [3, 4]
        assert [e["payload"] for e in seen] == [{"i": 1}, {"i": 2}]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == ""


def test_follow_prints_new_events_in_seq_order(ready: Cli) -> None:
    def append(i: int) -> None:
        ready("append", "x.note", "--signer", "rec", "--payload", json.dumps({"i": i}))

    check_follow(str(ready.db), ready.keys, append)
