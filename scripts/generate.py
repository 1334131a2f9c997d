"""Command line for the synthetic workload generator (``ledger.sample``).

::

    python scripts/generate.py --db l.db --keys keys --events 100000 --agents 20 --seed 1
    python scripts/generate.py --jsonl rec.jsonl --events 5000 --agents 5 --seed 1
    python scripts/generate.py --db l.db --keys keys --violations 0   # a ledger with no violations

The generator lives in the installed package (``ledger.sample``); its public names are
re-exported here for the benchmarks and tests that import them from ``scripts.generate``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterable
from pathlib import Path

if __package__ in (None, ""):  # run as ``python scripts/generate.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.sample import (
    EPOCH,
    EXPIRED,
    GOVERNOR,
    GOVERNOR_TYPES,
    ORIGIN,
    PRODUCED_TYPES,
    RECORDER,
    Conduct,
    build_ledger,
    generate_drafts,
    import_line,
    write_jsonl,
)
from ledger.store.sqlite import Draft

__all__ = [
    "EPOCH",
    "EXPIRED",
    "GOVERNOR",
    "GOVERNOR_TYPES",
    "ORIGIN",
    "PRODUCED_TYPES",
    "RECORDER",
    "Conduct",
    "build_ledger",
    "generate_drafts",
    "import_line",
    "main",
    "write_jsonl",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate a synthetic govledger workload.")
    ap.add_argument("--db", help="ledger file to create (must not exist)")
    ap.add_argument("--keys", help="key directory (root and recorder keys; created if missing)")
    ap.add_argument("--events", type=int, default=10_000, help="generated events (default 10000)")
    ap.add_argument("--agents", type=int, default=10, help="number of agents (default 10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1000, help="max events per transaction")
    ap.add_argument(
        "--violations",
        type=float,
        default=1.0,
        help="scale of how often runs break rules (0: never; default 1: about one run in seven)",
    )
    ap.add_argument(
        "--synchronous",
        default="NORMAL",
        choices=("NORMAL", "FULL", "EXTRA"),
        help="SQLite synchronous for the build (default NORMAL: a synthetic ledger "
        "need not survive a power cut)",
    )
    ap.add_argument(
        "--jsonl",
        help="also write the recorder-signed events as import lines "
        "(with deterministic ids) to this file",
    )
    args = ap.parse_args(argv)
    if args.db is None and args.jsonl is None:
        ap.error("give --db and/or --jsonl")
    if args.db is not None and args.keys is None:
        ap.error("--db needs --keys")
    start = time.perf_counter()
    stream: Iterable[tuple[str, Draft]] = generate_drafts(
        args.events, args.agents, args.seed, ids=args.jsonl is not None, violations=args.violations
    )
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if before // 100_000 != done // 100_000:
            rate = done / (time.perf_counter() - start)
            print(f"  {done:>10,} events  {rate:,.0f}/s", file=sys.stderr, flush=True)

    jsonl = open(args.jsonl, "w", encoding="utf-8") if args.jsonl else None  # noqa: SIM115
    with jsonl or contextlib.nullcontext():
        if jsonl is not None:
            stream = write_jsonl(stream, jsonl)
        if args.db is not None:
            ledger = build_ledger(
                args.db,
                args.keys,
                args.events,
                args.agents,
                args.seed,
                batch=args.batch,
                progress=progress,
                synchronous=args.synchronous,
                drafts=stream,
            )
            size = ledger.size
            ledger.close()
        else:
            size = sum(1 for _ in stream)
    elapsed = time.perf_counter() - start
    where = args.db or args.jsonl
    print(
        f"{args.events:,} events ({size:,} in the log) to {where} in {elapsed:.1f} s: "
        f"{args.events / elapsed:,.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
