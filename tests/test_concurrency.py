"""Real processes (SPEC §1.2, §1.6): concurrent writers never produce a gap, a duplicate or a
fork, and a writer killed with SIGKILL leaves the log whole, all of its batch or none."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ledger.crypto.keyfiles import KeyRing
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from ledger.verify.verifier import verify_ledger
from tests.conftest import ORIGIN, digest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")

GOVLEDGER = Path(sys.executable).parent / "govledger"

WRITER = textwrap.dedent(
    """
    import sys
    import time
    from ledger.crypto.keyfiles import KeyRing
    from ledger.store.sqlite import Draft, Ledger

    db, keys, name, worker, count = sys.argv[1:6]
    signer = KeyRing(keys).load(name)
    with Ledger.open(db) as ledger:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(int(count)):
            ledger.append(Draft("x.work", {"worker": int(worker), "i": i},
                                id=f"w{worker}-{i}"), signer=signer)
            # Agents do work between events. Without a pause, SQLite's lock (not fair) lets
            # the writer that just committed win again and again, and the writers barely
            # interleave, which would make this test prove little.
            time.sleep(0.001)
    """
)


def _setup(tmp_path: Path, recorders: int) -> tuple[Path, Path, int]:
    keys = tmp_path / "keys"
    ring = KeyRing(keys)
    root = ring.create("root")
    path = tmp_path / "l.db"
    with Ledger.create(path, origin=ORIGIN, root=root) as lg:
        for w in range(recorders):
            lg.append(
                Draft("key.registered", root_key_payload(ring.create(f"rec{w}"), "recorder")),
                signer=root,
            )
        return path, keys, lg.size


@pytest.mark.slow
def test_four_processes_append_2000_events_without_gap_duplicate_or_fork(tmp_path: Path) -> None:
    workers, each = 4, 500
    path, keys, setup = _setup(tmp_path, workers)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(keys), f"rec{w}", str(w), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for p in procs:  # every writer has its connection open before any starts writing
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err

    with Ledger.open(path) as lg:
        assert lg.size == setup + workers * each
        rows = list(lg.iter_rows(from_seq=setup + 1))
        assert [r[0] for r in rows] == list(range(setup + 1, setup + workers * each + 1))
        seen: dict[int, list[int]] = {w: [] for w in range(workers)}
        for r in rows:
            payload = json.loads(r[7])
            seen[payload["worker"]].append(payload["i"])
        # Every event once, and each writer's own events in the order it appended them.
        assert all(seen[w] == list(range(each)) for w in range(workers))
        # The writers really interleaved (otherwise this test proves little).
        owners = [json.loads(r[7])["worker"] for r in rows]
        switches = sum(a != b for a, b in itertools.pairwise(owners))
        assert switches > workers, switches
        report = verify_ledger(lg)
        assert report.ok, report.problems[:5]
        assert report.events == setup + workers * each


def _import_file(path: Path, lines: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(lines):
            f.write(
                json.dumps(
                    {
                        "type": "tool.called",
                        "agent": "a1",
                        "run": f"r{i // 100}",
                        "payload": {
                            "tool": "web.get",
                            "args_digest": digest(str(i)),
                            "side_effect": "read",
                        },
                    }
                )
                + "\n"
            )


KILLED_IN_TRANSACTION = textwrap.dedent(
    """
    import sys, time
    from ledger.exchange.import_lines import read_import
    from ledger.crypto.keyfiles import KeyRing
    from ledger.store.sqlite import Ledger

    db, keys, source = sys.argv[1:4]
    with open(source, "rb") as f:
        drafts = read_import(f, source)

    def stall(n):
        # Called once the rows are written, before COMMIT: wait here to be killed.
        print("in transaction", n, flush=True)
        time.sleep(60)

    with Ledger.open(db) as ledger:
        ledger.append_many(drafts, signer=KeyRing(keys).load("rec0"), progress=stall)
    """
)


@pytest.mark.slow
def test_sigkill_inside_the_write_transaction_leaves_nothing(tmp_path: Path) -> None:
    path, keys, setup = _setup(tmp_path, 1)
    with Ledger.open(path) as lg:
        head = lg.head()
    source = tmp_path / "big.jsonl"
    _import_file(source, 5000)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_IN_TRANSACTION, str(path), str(keys), str(source)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "in transaction 5000\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    with Ledger.open(path) as lg:
        assert lg.head() == head
        assert verify_ledger(lg).ok
        # The ledger is usable at once: the next writer is not blocked by the dead one.
        assert lg.append(Draft("x.after", {}), signer=KeyRing(keys).load("rec0")).seq == setup + 1


@pytest.mark.slow
@pytest.mark.parametrize(("low", "high"), [(0.1, 1.5), (1.5, 4.5)], ids=["early", "late"])
def test_sigkill_during_import_leaves_all_or_nothing(
    tmp_path: Path, low: float, high: float
) -> None:
    # A 30,000-line import takes a few seconds (parse and validate, then one transaction):
    # the kill lands while reading the file, while writing, or after the commit.
    lines = 30_000
    path, keys, setup = _setup(tmp_path, 1)
    source = tmp_path / "big.jsonl"
    _import_file(source, lines)
    delay = random.uniform(low, high)
    env = {**os.environ, "GOVLEDGER_DB": str(path), "GOVLEDGER_KEYS": str(keys)}
    proc = subprocess.Popen(
        [str(GOVLEDGER), "import", str(source), "--signer", "rec0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with Ledger.open(path) as lg:
        size = lg.size
        assert size in (setup, setup + lines), f"killed after {delay:.2f}s: {size} events"
        report = verify_ledger(lg)
        assert report.ok, (delay, report.problems[:3])
