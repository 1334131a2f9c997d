"""Benchmark: what the correction-pattern and reliability projections add to a full replay.

    python scripts/generate.py --db l.db --keys keys --events 1000000 --agents 20 --seed 2
    python -m scripts.bench_corrections l.db [--rounds 2]

Replays the whole log into a scratch database (the stored read models are never touched), once
with the projections as shipped (reliability, runs, tiers, corrections) and once with the
baseline (runs and tiers alone: the runs projection's dependency on reliability is unplugged
for that replay), alternating ``rounds`` times, and prints the best time of each and the
overhead (target: at most 30 %). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as ``python scripts/bench_corrections.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlite_utils import Database

from ledger.store.sqlite import Ledger
from projections import CORRECTIONS, RELIABILITY, RUNS, TIERS
from projections.driver import catch_up
from projections.projection import Projection
from projections.runs.fold import RunsProjection


def replay(ledger: Ledger, projections: list[Projection[Any]]) -> tuple[float, float]:
    """Wall and CPU seconds to fold the whole log through ``projections`` into a fresh scratch
    database (CPU time is the fairer comparison on a machine shared with other work)."""
    with tempfile.TemporaryDirectory(prefix="govledger-bench-") as tmp:
        db = Database(Path(tmp) / "replay.db")
        db.conn.execute("PRAGMA journal_mode = OFF")
        db.conn.execute("PRAGMA synchronous = OFF")
        started, cpu = time.perf_counter(), time.process_time()
        catch_up(ledger, db, projections=projections)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        db.conn.close()
    return seconds, cpu


def baseline(ledger: Ledger) -> tuple[float, float]:
    saved = RunsProjection.depends_on
    RunsProjection.depends_on = ()  # type: ignore[assignment]  # unplugged for the baseline
    try:
        return replay(ledger, [RUNS, TIERS])
    finally:
        RunsProjection.depends_on = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    with Ledger.open(args.db) as ledger:
        size = ledger.size
        base: list[tuple[float, float]] = []
        full: list[tuple[float, float]] = []
        for i in range(args.rounds):
            base.append(baseline(ledger))
            full.append(replay(ledger, [RELIABILITY, RUNS, TIERS, CORRECTIONS]))
            print(f"round {i + 1}: baseline {base[-1][0]:.2f} s (cpu {base[-1][1]:.2f} s), "
                  f"with corrections {full[-1][0]:.2f} s (cpu {full[-1][1]:.2f} s)", flush=True)  # fmt: skip
        for what, k in (("wall", 0), ("cpu", 1)):
            b, f = min(x[k] for x in base), min(x[k] for x in full)
            print(f"{size:,} events, best {what} time: baseline (runs, tiers) {b:.2f} s "
                  f"({size / b:,.0f} events/s); with reliability + corrections {f:.2f} s "
                  f"({size / f:,.0f} events/s); overhead {100 * (f - b) / b:+.1f} % "
                  f"(target <= 30 %)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
