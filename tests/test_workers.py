"""Ed25519 hot paths: libsodium signatures equal cryptography's, and the worker pool agrees
with in-process work, including when a worker dies (verification fails closed)."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.crypto import pool as workers
from ledger.crypto.signing import (
    EVENT_SIGNING_PREFIX,
    check_event_signature,
    sign_event,
    sodium_secret_key,
    verify_event_signature,
)
from ledger.errors import InputError, SignatureError
from ledger.event.envelope import Event
from ledger.store.sqlite import Draft, Ledger
from ledger.verify.verifier import verify_ledger
from tests.conftest import LedgerKeys


def _digests(n: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(n)]


def test_sodium_signature_is_byte_identical_to_cryptography() -> None:
    key = Ed25519PrivateKey.generate()
    secret = sodium_secret_key(key)
    for d in _digests(20):
        assert sign_event(secret, d) == key.sign(EVENT_SIGNING_PREFIX + d)


def test_verify_event_signature_rejects_wrong_digest_and_short_signature() -> None:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    d1, d2 = _digests(2)
    sig = sign_event(sodium_secret_key(key), d1)
    verify_event_signature(public_key=pub, signature=sig, digest=d1)
    with pytest.raises(SignatureError, match="signature does not verify"):
        verify_event_signature(public_key=pub, signature=sig, digest=d2)
    with pytest.raises(SignatureError):
        verify_event_signature(public_key=pub, signature=sig[:63], digest=d1)
    assert not check_event_signature(pub[:31], sig, d1)


def test_a_truncated_key_never_verifies_even_when_the_missing_byte_is_zero() -> None:
    # libsodium reads 32 bytes of key; a Python bytes object of 31 ends in a hidden NUL, so a
    # key whose last byte is 0 used to verify from its first 31 bytes (found by CI, 1 in 256).
    key = Ed25519PrivateKey.generate()
    while key.public_key().public_bytes_raw()[-1] != 0:
        key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    (d,) = _digests(1)
    sig = sign_event(sodium_secret_key(key), d)
    assert check_event_signature(pub, sig, d)
    assert not check_event_signature(pub[:31], sig, d)
    assert not check_event_signature(pub, sig + b"\0", d)
    assert not check_event_signature(pub, sig, d + b"\0")


@pytest.fixture
def two_workers(monkeypatch: pytest.MonkeyPatch) -> Iterator[workers.WorkerPool]:
    """The shared pool, with two workers (appends and verifies use it)."""
    pool = workers.WorkerPool(2)
    monkeypatch.setattr(workers, "_default", pool)
    yield pool
    pool.close()


def _sign_all(pool: workers.WorkerPool, secret: bytes, digests: list[bytes]) -> list[bytes]:
    signing = pool.signing(secret, len(digests))
    for d in digests:
        signing.add(d)
    return [s for part in signing.signatures() for s in part]


def test_pool_signs_and_checks_like_in_process(two_workers: workers.WorkerPool) -> None:
    key = Ed25519PrivateKey.generate()
    secret = sodium_secret_key(key)
    pub = key.public_key().public_bytes_raw()
    digests = _digests(2000)
    sigs = _sign_all(two_workers, secret, digests)
    assert sigs == [sign_event(secret, d) for d in digests]
    # Corrupt three signatures: exactly their seqs come back.
    items = [(i + 1, pub, s, d) for i, (s, d) in enumerate(zip(sigs, digests, strict=True))]
    for bad in (5, 700, 1999):
        seq, k, s, d = items[bad - 1]
        items[bad - 1] = (seq, k, bytes([s[0] ^ 1]) + s[1:], d)
    q = two_workers.verifying(len(items))
    for i in range(0, len(items), 256):
        q.add(items[i : i + 256])
    assert sorted(q.failed(finish=True)) == [5, 700, 1999]


def test_pool_fails_a_record_of_the_wrong_size_without_shifting_the_others(
    two_workers: workers.WorkerPool,
) -> None:
    key = Ed25519PrivateKey.generate()
    secret = sodium_secret_key(key)
    pub = key.public_key().public_bytes_raw()
    digests = _digests(600)
    items = [(i + 1, pub, sign_event(secret, d), d) for i, d in enumerate(digests)]
    items[9] = (10, pub[:31], items[9][2], items[9][3])
    items[300] = (301, pub, items[300][2][:63], items[300][3])
    q = two_workers.verifying(len(items))
    for i in range(0, len(items), 256):
        q.add(items[i : i + 256])
    assert sorted(q.failed(finish=True)) == [10, 301]


def test_a_killed_worker_falls_back_to_in_process_checks(two_workers: workers.WorkerPool) -> None:
    key = Ed25519PrivateKey.generate()
    secret = sodium_secret_key(key)
    pub = key.public_key().public_bytes_raw()
    digests = _digests(1500)
    items = [(i + 1, pub, sign_event(secret, d), d) for i, d in enumerate(digests)]
    items[1234] = (1235, pub, b"\x00" * 64, digests[1234])
    p = two_workers.verifying(len(items))
    p.add(items[:256])
    for pid in two_workers.worker_pids():
        os.kill(pid, signal.SIGKILL)
    for i in range(256, len(items), 256):
        p.add(items[i : i + 256])
    assert p.failed(finish=True) == [1235]


def test_an_abandoned_batch_leaves_the_next_answers_in_order(
    two_workers: workers.WorkerPool,
) -> None:
    """A batch that fails mid-way leaves requests on the workers nobody will collect; the next
    batch reads past their answers, never taking one of them for its own."""
    secret = sodium_secret_key(Ed25519PrivateKey.generate())
    digests = _digests(700)
    abandoned = two_workers.signing(secret, 512)
    for d in digests[:512]:
        abandoned.add(d)
    assert _sign_all(two_workers, secret, digests[512:]) == [
        sign_event(secret, d) for d in digests[512:700]
    ]


def test_a_bad_draft_late_in_a_worker_signed_batch_writes_nothing(
    two_workers: workers.WorkerPool, ledger: Ledger, keys: LedgerKeys
) -> None:
    """Drafts of a batch are validated as they are chained, after the first chunks went to
    the workers: a bad one still rolls back the whole batch, and the next batch is signed
    right (not with the answers to the abandoned requests)."""
    good = [Draft("x.note", {"i": i}) for i in range(203)]  # chunks of 50 and a last of 3
    bad = [*good, *(Draft("x.note", {"i": i}) for i in range(203, 300))]
    bad[250] = Draft("x.note", {"i": 1.5})
    with pytest.raises(InputError, match=r"event 251: payload\.i: float"):
        ledger.append_many(bad, signer=keys.recorder)
    assert ledger.size == 2
    events = ledger.append_many(good, signer=keys.recorder)
    assert [e.seq for e in events] == list(range(3, 206))
    assert events == list(ledger.iter_events(from_seq=3))  # what append_many returns is stored
    assert all(type(e) is Event for e in events)
    report = verify_ledger(ledger)
    assert report.ok, report.problems[:1]
    assert report.events == 205


def test_a_value_that_is_no_json_late_in_a_worker_signed_batch_writes_nothing(
    two_workers: workers.WorkerPool, ledger: Ledger, keys: LedgerKeys
) -> None:
    """A function in a payload, reached after the workers got the first chunks to sign: the
    batch fails naming the event and field, and nothing is written."""
    drafts = [Draft("x.note", {"i": i}) for i in range(100)]
    drafts[70] = Draft("x.note", {"f": lambda: 0})
    with pytest.raises(
        InputError, match=r"event 71: payload\.f: value of type function is not JSON"
    ):
        ledger.append_many(drafts, signer=keys.recorder)
    assert ledger.size == 2


def test_a_batch_of_large_payloads_goes_through_the_workers(
    two_workers: workers.WorkerPool, ledger: Ledger, keys: LedgerKeys
) -> None:
    """100 payloads near the 48 KiB event body limit in one worker-signed batch: stored whole,
    and the log verifies."""
    drafts = [Draft("x.note", {"blob": f"{i:05d}" + "x" * 48_000}) for i in range(100)]
    events = ledger.append_many(drafts, signer=keys.recorder)
    assert [e.payload["blob"][:5] for e in events] == [f"{i:05d}" for i in range(100)]
    report = verify_ledger(ledger)
    assert report.ok, report.problems[:1]
    assert report.events == 102


def test_only_digests_and_signatures_cross_to_the_workers(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, keys: LedgerKeys
) -> None:
    """Batches send the workers signing requests and nothing else: drafts and payloads stay
    in the process (a payload's text never reaches a pipe), and every batch verifies."""
    pool = workers.WorkerPool(2)
    monkeypatch.setattr(workers, "_default", pool)
    sent: list[bytes] = []
    real_write = workers.WorkerPool._write

    def spy(self: workers.WorkerPool, w: object, frame: bytes) -> None:
        sent.append(frame)
        real_write(self, w, frame)  # type: ignore[arg-type]

    monkeypatch.setattr(workers.WorkerPool, "_write", spy)
    try:
        for batch in range(3):
            ledger.append_many(
                [Draft("x.note", {"secret-ish": f"b{batch}-{i}"}) for i in range(100)],
                signer=keys.recorder,
            )
        assert {frame[:1] for frame in sent} == {b"S"}
        assert not any(b"secret-ish" in frame for frame in sent)
        report = verify_ledger(ledger)
        assert report.ok, report.problems[:1]
        assert report.events == 302
    finally:
        pool.close()


def test_threads_sharing_the_workers_get_their_own_answers(
    two_workers: workers.WorkerPool, ledger: Ledger, keys: LedgerKeys, tmp_path: Path
) -> None:
    """The worker processes are shared by the threads of a process: one thread verifying a
    ledger over and over while another appends batches through its own connection each gets
    the answers to its own requests (every signature written verifies; no false alarm)."""
    ledger.append_many([Draft("x.note", {"i": i}) for i in range(800)], signer=keys.recorder)
    errors: list[BaseException] = []
    stop = threading.Event()

    def too_long(signum: int, frame: object) -> None:
        stop.set()
        raise TimeoutError("threads sharing the workers hung (answers crossed?)")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(120)  # without the workers' lock this test hangs: fail instead

    def verify_loop() -> None:
        try:
            with Ledger.open(ledger.path) as reader:
                while not stop.is_set():
                    report = verify_ledger(reader)
                    assert report.ok, report.problems[:1]
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=verify_loop)
    t.start()
    try:
        with Ledger.open(ledger.path) as writer:
            for b in range(15):
                writer.append_many(
                    [Draft("x.note", {"b": b, "i": i}) for i in range(100)], signer=keys.recorder
                )
    finally:
        stop.set()
        t.join(timeout=120)
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert not errors, errors[0]
    report = verify_ledger(ledger)
    assert report.ok, report.problems[:1]
    assert report.events == 2 + 800 + 1500


def test_a_forked_child_starts_workers_of_its_own(two_workers: workers.WorkerPool) -> None:
    """A child forked after the workers started (a pre-forking server, a multiprocessing pool)
    never writes to its parent's workers: it starts its own, and both get right answers."""
    secret = sodium_secret_key(Ed25519PrivateKey.generate())
    digests = _digests(300)
    expected = [sign_event(secret, d) for d in digests]
    p = two_workers.signing(secret, 300)
    for d in digests[:150]:
        p.add(d)
    parents = two_workers.worker_pids()
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if it signed right with workers of its own
        ok = False
        try:
            signed = _sign_all(two_workers, secret, digests[150:])
            mine = two_workers.worker_pids()
            ok = signed == expected[150:] and bool(mine) and not (set(mine) & set(parents))
            two_workers.close()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for d in digests[150:]:
        p.add(d)
    assert [s for part in p.signatures() for s in part] == expected
