"""Benchmark: proofs, checkpoints and the cost of keeping the Merkle tree.

    python -m scripts.bench_proofs build DB [--events 1000000]   # once, a few minutes
    python -m scripts.bench_proofs run DB                         # prove / checkpoint timings
    python -m scripts.bench_proofs tree [--batches 200]           # append with vs without tree

``run`` times ``prove_inclusion`` and ``sign_current_checkpoint`` in process on a large ledger
(target < 50 ms each). ``tree`` appends the same batches of 1000 events to two fresh ledgers,
one as shipped and one with the Merkle step (``merkle.extend`` + the ``merkle_nodes``
insert) patched out, and prints the overhead of keeping the tree (target <= 15 %). Timings are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.store.sqlite import Draft, Ledger
from ledger.tlog import merkle
from ledger.tlog.proofs import prove_inclusion, sign_current_checkpoint

ORIGIN = "bench.example/log"
BATCH = 1000


def _drafts(start: int, n: int) -> list[Draft]:
    return [
        Draft(
            "x.bench",
            {"i": start + i, "note": "benchmark event"},
            agent="a1",
            run=f"r{(start + i) // 50}",
        )
        for i in range(n)
    ]


def _keys(db: Path) -> Signer:
    ring = KeyRing(db.parent / (db.name + ".keys"))
    return ring.load_or_create("root")


def build(db: Path, events: int) -> None:
    root = _keys(db)
    lg = (
        Ledger.open(db, synchronous="NORMAL")
        if db.exists()
        else Ledger.create(db, origin=ORIGIN, root=root, synchronous="NORMAL")
    )
    with lg:
        t0 = time.perf_counter()
        while (size := lg.size) < events:
            n = min(BATCH, events - size)
            lg.append_many(_drafts(size, n), signer=root)
            if (size + n) % 100_000 < BATCH:
                rate = (size + n) / (time.perf_counter() - t0)
                print(f"{size + n} events ({rate:.0f}/s)", file=sys.stderr, flush=True)
    print(f"built {db}: {events} events")


def _ms(f: Callable[[], Any], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def run(db: Path, repeat: int) -> None:
    root = _keys(db)
    with Ledger.open(db) as lg:
        size = lg.size
        rng = random.Random(5)
        sign_current_checkpoint(lg, root)  # so prove embeds a stored checkpoint
        med, worst = _ms(lambda: sign_current_checkpoint(lg, root), repeat)
        print(f"size {size}")
        print(f"checkpoint        median {med:7.2f} ms  max {worst:7.2f} ms  (target < 50)")
        seqs = iter([rng.randrange(1, size + 1) for _ in range(repeat)])
        med, worst = _ms(lambda: prove_inclusion(lg, next(seqs)), repeat)
        print(f"prove             median {med:7.2f} ms  max {worst:7.2f} ms  (target < 50)")
        # Fresh random sizes for each line (reusing them would hand the later line a warm
        # cache), then one size repeated (all pages cached: the cost of the queries alone).
        for label, f in (
            ("root_at batched", lambda n: lg.root_at(n)),
            ("root_at per node", lambda n: merkle.root_at(n, lg.get_node)),
            ("proof batched", lambda n: lg.inclusion_proof(n // 2, n)),
            ("proof per node", lambda n: merkle.inclusion_proof_at(n // 2, n, lg.get_node)),
        ):
            for kind, sizes in (
                ("random sizes", [rng.randrange(1, size + 1) for _ in range(repeat)]),
                ("cached", [size * 3 // 4] * repeat),
            ):
                it = iter(sizes)
                med, worst = _ms(lambda f=f, it=it: f(next(it)), repeat)  # type: ignore[misc]
                print(f"{label:17s} median {med:7.3f} ms  max {worst:7.2f} ms  ({kind})")


@contextmanager
def _merkle_step(*, enabled: bool, spent: list[float]) -> Iterator[None]:
    """Time ``merkle.extend`` (the tree's hashing at append) or, when not ``enabled``, patch
    it out so the append writes no ``merkle_nodes`` rows either (benchmark baseline only)."""
    saved = merkle.extend

    def timed(size: int, leaves: Any, frontier: Any) -> Any:
        t0 = time.perf_counter()
        out = saved(size, leaves, frontier)
        spent.append(time.perf_counter() - t0)
        return out

    def none(size: int, leaves: Any, frontier: Any) -> Any:
        return [], {}

    setattr(merkle, "extend", timed if enabled else none)  # noqa: B010
    try:
        yield
    finally:
        setattr(merkle, "extend", saved)  # noqa: B010


class _TimedConnection(sqlite3.Connection):
    """Adds up the time of the ``merkle_nodes`` inserts (the tree's share of the writes)."""

    merkle_insert = 0.0

    def executemany(self, sql: str, rows: Any, /) -> sqlite3.Cursor:
        t0 = time.perf_counter()
        try:
            return super().executemany(sql, rows)
        finally:
            if sql.startswith("INSERT INTO merkle_nodes"):
                _TimedConnection.merkle_insert += time.perf_counter() - t0


@contextmanager
def _timed_connections() -> Iterator[None]:
    connect = sqlite3.connect

    def timed(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, factory=_TimedConnection, **kwargs)

    setattr(sqlite3, "connect", timed)  # noqa: B010
    try:
        yield
    finally:
        setattr(sqlite3, "connect", connect)  # noqa: B010


def _append_time(
    db: Path, root: Signer, batches: int, *, tree: bool, prefill: int, hashing: list[float]
) -> float:
    lg = Ledger.create(db, origin=ORIGIN, root=root, synchronous="NORMAL")
    with lg:
        for start in range(0, prefill, BATCH):
            lg.append_many(_drafts(start, BATCH), signer=root)
        work = [_drafts(prefill + b * BATCH, BATCH) for b in range(batches)]
        with _merkle_step(enabled=tree, spent=hashing):
            t0 = time.perf_counter()
            for d in work:
                lg.append_many(d, signer=root)
            return time.perf_counter() - t0


def tree(batches: int, rounds: int, prefill: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, _timed_connections():
        root = KeyRing(Path(tmp) / "keys").create("root")
        _TimedConnection.merkle_insert = 0.0
        with_t: list[float] = []
        without_t: list[float] = []
        hashing: list[float] = []
        for r in range(rounds):  # interleaved, so drift hits both sides alike
            sides = ((True, with_t), (False, without_t))
            for flag, out in sides if r % 2 else sides[::-1]:  # alternate who goes first
                db = Path(tmp) / f"{r}-{flag}.db"
                out.append(
                    _append_time(db, root, batches, tree=flag, prefill=prefill, hashing=hashing)
                )
                db.unlink()
        n = batches * BATCH
        a, b = statistics.median(with_t), statistics.median(without_t)
        h = sum(hashing) / rounds
        ins = _TimedConnection.merkle_insert / rounds
        print(f"append {n} events in batches of {BATCH} (after {prefill}), median of {rounds}:")
        print(f"  with tree     {a * 1000:8.1f} ms  ({n / a:8.0f} events/s)")
        print(f"  without tree  {b * 1000:8.1f} ms  ({n / b:8.0f} events/s)")
        print(
            f"  overhead      {(a / b - 1) * 100:6.1f} %  (target <= 15 %; noisy on a busy machine)"
        )
        print("  direct cost inside the appends with the tree (mean per run):")
        print(f"    merkle.extend        {h * 1000:8.1f} ms  ({h / a * 100:5.1f} % of the append)")
        print(
            f"    merkle_nodes insert  {ins * 1000:8.1f} ms  ({ins / a * 100:5.1f} % of the append)"
        )
        print(f"    tree / rest          {(h + ins) / (a - h - ins) * 100:5.1f} %")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("db", type=Path)
    b.add_argument("--events", type=int, default=1_000_000)
    r = sub.add_parser("run")
    r.add_argument("db", type=Path)
    r.add_argument("--repeat", type=int, default=50)
    t = sub.add_parser("tree")
    t.add_argument("--batches", type=int, default=100)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--prefill", type=int, default=0)
    args = p.parse_args()
    if args.cmd == "build":
        build(args.db, args.events)
    elif args.cmd == "run":
        run(args.db, args.repeat)
    else:
        tree(args.batches, args.rounds, args.prefill)


if __name__ == "__main__":
    main()
