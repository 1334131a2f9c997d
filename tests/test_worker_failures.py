"""A worker failure stays local: a worker that dies, hangs or answers garbage costs its batch
some in-process work, never another batch's failure, an unsigned event or a wrong verdict."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.crypto import pool as workers
from ledger.errors import LedgerError
from ledger.store.sqlite import Draft, Ledger
from ledger.verify.verifier import verify_ledger
from tests.conftest import LedgerKeys

JUNK_WORKER = """
import os
while True:
    data = os.read(0, 1 << 16)
    if not data:
        break
    os.write(1, b"\\x01" * (len(data) + 64))
"""

LYING_WORKER = """
import os, struct, sys
from ledger.crypto.pool_worker import answer
buf = b""
while True:
    data = os.read(0, 1 << 16)
    if not data:
        break
    buf += data
    while len(buf) >= 9:
        op, n, rid = buf[:1], struct.unpack(">I", buf[1:5])[0], buf[5:9]
        size = 64 + 32 * n if op == b"S" else 128 * n
        if len(buf) < 9 + size:
            break
        buf = buf[9 + size:]
        # Well framed, but wrong: zero signatures, and "valid" for everything.
        os.write(1, answer(rid, b"\\0" * 64 * n if op == b"S" else b"\\1" * n))
"""

HUNG_WORKER = """
import time
time.sleep(3600)
"""


def _fake_pool(tmp_path: Path, name: str, script: str, timeout: float = 30.0) -> workers.WorkerPool:
    path = tmp_path / f"{name}.py"
    path.write_text(script)
    return workers.WorkerPool(2, command=[sys.executable, str(path)], timeout=timeout)


@pytest.fixture
def use_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[workers.WorkerPool]]:
    """Install a pool as the shared one (appends and verifies use it); closed afterwards."""
    installed: list[workers.WorkerPool] = []

    def install(pool: workers.WorkerPool) -> workers.WorkerPool:
        installed.append(pool)
        monkeypatch.setattr(workers, "_default", pool)
        return pool

    yield installed
    for p in installed:
        p.close()


def _notes(n: int, tag: str) -> list[Draft]:
    return [Draft("x.note", {"t": tag, "i": i}) for i in range(n)]


def _tamper_signature(path: Path, seq: int) -> None:
    """Give event ``seq`` the signature of another event (well formed, wrong)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER events_no_update")
        other = conn.execute("SELECT sig FROM events WHERE seq = ?", (seq + 1,)).fetchone()[0]
        conn.execute("UPDATE events SET sig = ? WHERE seq = ?", (other, seq))
    finally:
        conn.close()


def _bad_signature_seqs(ledger: Ledger) -> list[int]:
    report = verify_ledger(ledger)
    assert all(p.kind == "bad_signature" for p in report.problems), report.problems[:3]
    return [p.seq for p in report.problems]


def test_workers_killed_during_a_verify_and_an_append_in_threads_fail_nothing(
    monkeypatch: pytest.MonkeyPatch,
    use_pool: list[workers.WorkerPool],
    ledger: Ledger,
    keys: LedgerKeys,
) -> None:
    """One thread verifies the log over and over while another appends batches; the worker
    processes are killed (SIGKILL) again and again while requests of both are on them. Every
    append completes, every verify says the log is intact, and the final log verifies."""
    pool = workers.WorkerPool(2)
    use_pool.append(pool)
    monkeypatch.setattr(workers, "_default", pool)
    ledger.append_many(_notes(1500, "setup"), signer=keys.recorder)
    frames = 0
    real_write = workers.WorkerPool._write

    def write_then_kill(self: workers.WorkerPool, w: object, frame: bytes) -> None:
        nonlocal frames
        real_write(self, w, frame)  # type: ignore[arg-type]
        frames += 1
        if frames % 7 == 0:  # requests of both threads are in flight: kill every worker
            for pid in self.worker_pids():
                os.kill(pid, signal.SIGKILL)

    monkeypatch.setattr(workers.WorkerPool, "_write", write_then_kill)
    errors: list[BaseException] = []
    verdicts: list[bool] = []
    appended = threading.Event()

    def verify_loop() -> None:
        try:
            with Ledger.open(ledger.path) as reader:
                while not appended.is_set() or len(verdicts) < 2:
                    report = verify_ledger(reader)
                    verdicts.append(report.ok)
                    assert report.ok, report.problems[:1]
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=verify_loop)
    t.start()
    try:
        with Ledger.open(ledger.path) as writer:
            for b in range(8):
                events = writer.append_many(_notes(300, f"b{b}"), signer=keys.recorder)
                assert len(events) == 300
    finally:
        appended.set()
        t.join(timeout=300)
    assert not t.is_alive()
    assert not errors, errors[0]
    assert verdicts and all(verdicts)
    assert frames >= 7  # the workers were killed at least once
    report = verify_ledger(ledger)
    assert report.ok, report.problems[:1]
    assert report.events == 2 + 1500 + 8 * 300


def test_a_batch_outlives_the_workers_of_another_batch_dying(
    use_pool: list[workers.WorkerPool],
) -> None:
    """Two batches on one pool; the workers are killed while both have requests on them: each
    batch still gets its own right answers, and the next batch runs on fresh workers."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ledger.crypto.signing import sign_event, sodium_secret_key

    pool = workers.WorkerPool(2)
    use_pool.append(pool)
    key = Ed25519PrivateKey.generate()
    secret = sodium_secret_key(key)
    pub = key.public_key().public_bytes_raw()
    digests = [i.to_bytes(32, "big") for i in range(1200)]
    sigs = [sign_event(secret, d) for d in digests]
    items = [(i, pub, s, d) for i, (s, d) in enumerate(zip(sigs, digests, strict=True))]
    items[900] = (900, pub, sigs[901], digests[900])
    signing = pool.signing(secret, 600)
    checking = pool.verifying(1200)
    for d in digests[:300]:
        signing.add(d)
    checking.add(items[:256])
    killed = pool.worker_pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    for d in digests[300:600]:
        signing.add(d)
    for i in range(256, 1200, 256):
        checking.add(items[i : i + 256])
    assert [s for part in signing.signatures() for s in part] == sigs[:600]
    assert checking.failed(finish=True) == [900]
    again = pool.signing(secret, 600)
    for d in digests[600:]:
        again.add(d)
    assert [s for part in again.signatures() for s in part] == sigs[600:]
    assert pool.worker_pids() and not set(pool.worker_pids()) & set(killed)


@pytest.mark.parametrize("script", [JUNK_WORKER, LYING_WORKER], ids=["junk", "lying"])
def test_workers_answering_garbage_never_sign_or_clear_an_event(
    script: str,
    use_pool: list[workers.WorkerPool],
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
    keys: LedgerKeys,
    tmp_path: Path,
) -> None:
    """Workers that write junk, or well-framed zero signatures and "valid" for everything:
    batches are signed right anyway, and a bad signature is still found."""
    pool = _fake_pool(tmp_path, "fake_worker", script)
    use_pool.append(pool)
    monkeypatch.setattr(workers, "_default", pool)
    for b in range(3):
        assert len(ledger.append_many(_notes(400, f"b{b}"), signer=keys.recorder)) == 400
    assert ledger.size == 1202
    assert _bad_signature_seqs(ledger) == []
    _tamper_signature(ledger.path, 777)
    with Ledger.open(ledger.path) as reader:
        assert _bad_signature_seqs(reader) == [777]


def test_hung_workers_are_timed_out_and_their_work_done_in_process(
    use_pool: list[workers.WorkerPool],
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
    keys: LedgerKeys,
    tmp_path: Path,
) -> None:
    """Workers that never read nor answer, with a short timeout: the batch completes, the log
    verifies, and a bad signature is still found."""
    pool = _fake_pool(tmp_path, "hung_worker", HUNG_WORKER, timeout=0.3)
    use_pool.append(pool)
    monkeypatch.setattr(workers, "_default", pool)
    assert len(ledger.append_many(_notes(700, "hung"), signer=keys.recorder)) == 700
    assert ledger.size == 702
    assert _bad_signature_seqs(ledger) == []
    _tamper_signature(ledger.path, 345)
    with Ledger.open(ledger.path) as reader:
        assert _bad_signature_seqs(reader) == [345]


def test_a_bad_batch_with_dead_workers_is_a_library_error_and_writes_nothing(
    use_pool: list[workers.WorkerPool],
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
    keys: LedgerKeys,
    tmp_path: Path,
) -> None:
    """A batch whose drafts are bad, signed by workers that answer junk: the error is the
    library's, about the draft, and the log is as it was."""
    pool = _fake_pool(tmp_path, "fake_worker", JUNK_WORKER)
    use_pool.append(pool)
    monkeypatch.setattr(workers, "_default", pool)
    drafts = _notes(300, "bad")
    drafts[250] = Draft("x.note", {"i": 1.5})
    with pytest.raises(LedgerError, match=r"event 251: payload\.i: float"):
        ledger.append_many(drafts, signer=keys.recorder)
    assert ledger.size == 2
    assert verify_ledger(ledger).ok


@pytest.mark.parametrize(("env", "size"), [("0", 0), ("2", 2), ("99", 8)])
def test_the_shared_pool_has_govledger_workers_processes(
    env: str, size: int, monkeypatch: pytest.MonkeyPatch, ledger: Ledger, keys: LedgerKeys
) -> None:
    """``GOVLEDGER_WORKERS`` sizes the shared pool (0: everything in-process, at most 8)."""
    monkeypatch.setenv("GOVLEDGER_WORKERS", env)
    monkeypatch.setattr(workers, "_default", None)
    pool = workers.pool()
    try:
        assert pool.size == size
        ledger.append_many(_notes(100, "env"), signer=keys.recorder)
        assert len(pool.worker_pids()) == size
        assert verify_ledger(ledger).ok
    finally:
        pool.close()
