"""Threads (SPEC §1.2, §1.6): threads appending through one shared ``Ledger`` or one each
leave a contiguous log that verifies, while other threads read and verify beside them; a
thread never rolls back another's transaction; SQLite errors reach callers as ledger errors."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.errors import DatabaseLocked, LedgerError, NotALedger, StoreError
from ledger.event.drafts import prepare
from ledger.store.sqlite import Draft, Ledger, root_key_payload
from ledger.verify.verifier import verify_ledger
from tests.conftest import ORIGIN

WRITERS = 8
EACH = 500


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, Signer]]:
    """A ledger (commits without fsync, to keep the run short) and a recorder key."""
    ring = KeyRing(tmp_path / "keys")
    root, rec = ring.create("root"), ring.create("rec")
    path = tmp_path / "l.db"
    with Ledger.create(path, origin=ORIGIN, root=root, synchronous="NORMAL") as lg:
        lg.append(Draft("key.registered", root_key_payload(rec, "recorder")), signer=root)
    yield path, rec


def run_threads(jobs: list[Callable[[], None]], beside: list[Callable[[], None]]) -> None:
    """Run ``jobs`` and, until they are done, ``beside`` over and over; re-raise the first
    error of any thread."""
    errors: list[BaseException] = []
    done = threading.Event()
    start = threading.Barrier(len(jobs) + len(beside))

    def guarded(job: Callable[[], None], loop: bool) -> None:
        try:
            start.wait()
            job()
            # A pause between rounds, so the readers do not take most of the interpreter's
            # time from the writers.
            while loop and not done.wait(0.1):
                job()
        except BaseException as e:  # reported by the main thread below
            errors.append(e)

    writers = [threading.Thread(target=guarded, args=(j, False)) for j in jobs]
    readers = [threading.Thread(target=guarded, args=(j, True)) for j in beside]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    if errors:
        raise errors[0]


def check_log(path: Path, writers: int, each: int) -> None:
    """seq 1..N without a gap, every writer's events once and in its order, and verify ok."""
    with Ledger.open(path) as lg:
        rows = list(lg.iter_rows())
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert len(rows) == 2 + writers * each
        seen: dict[int, list[int]] = {w: [] for w in range(writers)}
        for r in rows[2:]:
            payload = json.loads(r[7])
            seen[payload["worker"]].append(payload["i"])
        assert all(seen[w] == list(range(each)) for w in range(writers))
        report = verify_ledger(lg)
        assert report.ok, report.problems[:5]
        assert report.events == len(rows)


def readers_of(lg: Ledger) -> list[Callable[[], None]]:
    """What projections and the CLI do from other threads: verify, list, get events."""

    def verify() -> None:
        report = verify_ledger(lg)
        assert report.ok, report.problems[:5]

    def list_and_get() -> None:
        size = lg.size
        events = list(lg.iter_events(from_seq=max(1, size - 50), to_seq=size))
        assert [e.seq for e in events] == list(range(max(1, size - 50), size + 1))
        last = lg.event_at(size)
        assert lg.find_id(last.id) == size
        assert lg.hash_at(size) == last.hash
        assert lg.keys()[0]["name"] == "root"
        assert lg.origin == ORIGIN
        assert len(lg.root_at(size)) == 32

    return [verify, list_and_get]


def draft(worker: int, i: int) -> Draft:
    return Draft("x.work", {"worker": worker, "i": i}, id=f"w{worker}-{i}")


def test_threads_sharing_one_ledger_append_a_contiguous_log_that_verifies(
    setup: tuple[Path, Signer],
) -> None:
    path, rec = setup
    with Ledger.open(path, synchronous="NORMAL") as lg:

        def writer(w: int) -> Callable[[], None]:
            return lambda: [lg.append(draft(w, i), signer=rec) for i in range(EACH)] and None

        run_threads([writer(w) for w in range(WRITERS)], readers_of(lg))
    check_log(path, WRITERS, EACH)


def test_threads_with_a_ledger_each_append_a_contiguous_log_that_verifies(
    setup: tuple[Path, Signer],
) -> None:
    path, rec = setup

    def writer(w: int) -> Callable[[], None]:
        def run() -> None:
            with Ledger.open(path, synchronous="NORMAL") as lg:
                for i in range(EACH):
                    lg.append(draft(w, i), signer=rec)

        return run

    with Ledger.open(path) as reader:
        run_threads([writer(w) for w in range(WRITERS)], readers_of(reader))
    check_log(path, WRITERS, EACH)


def test_threads_appending_batches_through_one_ledger_keep_each_batch_whole(
    setup: tuple[Path, Signer],
) -> None:
    path, rec = setup
    # Batches of 100 are signed by the worker processes (from 64 events), which the threads
    # share.
    writers, batches, size = 4, 5, 100
    with Ledger.open(path, synchronous="NORMAL") as lg:

        def writer(w: int) -> Callable[[], None]:
            def run() -> None:
                for b in range(batches):
                    drafts = [draft(w, b * size + i) for i in range(size)]
                    events = lg.append_many(drafts, signer=rec)
                    seqs = [e.seq for e in events]
                    assert seqs == list(range(seqs[0], seqs[0] + size))

            return run

        run_threads([writer(w) for w in range(writers)], readers_of(lg))
    check_log(path, writers, batches * size)


def test_a_thread_that_cannot_get_the_write_lock_leaves_the_holders_transaction_alone(
    setup: tuple[Path, Signer],
) -> None:
    path, rec = setup
    with Ledger.open(path, busy_timeout_ms=100) as lg:
        failed: list[BaseException] = []

        def other() -> None:
            try:
                lg.append(draft(1, 0), signer=rec)
            except LedgerError as e:
                failed.append(e)

        with lg.write() as tx:
            tx.append([prepare(draft(0, 0))], signer=rec)
            t = threading.Thread(target=other)
            t.start()
            t.join()
        assert len(failed) == 1
        assert isinstance(failed[0], DatabaseLocked)
        assert failed[0].exit_code == 3
        assert str(failed[0]) == (
            f"{path}: database is locked by another writer (waited past the busy timeout)"
        )
        # The holder's append committed; the other one can append now.
        assert lg.size == 3
        assert lg.event_at(3).id == "w0-0"
        lg.append(draft(1, 0), signer=rec)
    assert verify_ledger(Ledger.open(path)).ok


def test_a_nested_write_fails_without_rolling_back_the_outer_one(
    setup: tuple[Path, Signer],
) -> None:
    path, rec = setup
    with Ledger.open(path) as lg:
        with lg.write() as tx:
            tx.append([prepare(draft(0, 0))], signer=rec)
            with pytest.raises(StoreError, match="cannot start a transaction within a transaction"):
                lg.append(draft(0, 1), signer=rec)
        assert [e.id for e in lg.iter_events(from_seq=3)] == ["w0-0"]


def test_another_connection_holding_the_write_lock_gives_database_locked(
    setup: tuple[Path, Signer],
) -> None:
    path, rec = setup
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Ledger.open(path, busy_timeout_ms=50) as lg:
            with pytest.raises(DatabaseLocked) as info:
                lg.append(draft(0, 0), signer=rec)
            assert str(info.value) == (
                f"{path}: database is locked by another writer (waited past the busy timeout)"
            )
            assert lg.size == 2  # reads go on beside the writer
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_reads_of_a_ledger_whose_tables_were_dropped_give_not_a_ledger(
    setup: tuple[Path, Signer],
) -> None:
    path, _ = setup
    with Ledger.open(path) as lg:
        raw = sqlite3.connect(path)
        raw.execute("DROP TABLE merkle_nodes")
        raw.execute("DROP TABLE keys")
        raw.commit()
        raw.close()
        with pytest.raises(NotALedger) as info:
            lg.keys()
        assert str(info.value) == f"{path}: not a govledger database (no such table: keys)"
        assert info.value.exit_code == 3


def test_a_closed_ledger_gives_a_store_error_in_every_thread(
    setup: tuple[Path, Signer],
) -> None:
    path, _ = setup
    lg = Ledger.open(path)
    lg.close()
    lg.close()  # closing twice is harmless
    errors: list[BaseException] = []

    def read() -> None:
        try:
            lg.head()
        except StoreError as e:
            errors.append(e)

    t = threading.Thread(target=read)
    t.start()
    t.join()
    with pytest.raises(StoreError) as info:
        lg.head()
    assert [str(e) for e in errors] == [str(info.value)] == [f"{path}: the ledger is closed"]
