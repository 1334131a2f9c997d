"""Benchmark: what the recording API costs over the store, and what it does to an event loop.

    python scripts/bench_recorder.py [--events 2000] [--rounds 3] [--synchronous FULL]

In a temporary directory, with real keys and SQLite files:

1. overhead: ``--events`` ``tool.called`` events appended one by one with ``Ledger.append``
   (the baseline: drafts built beforehand, digests included) and through ``Run.tool_called``
   (digest of the arguments, draft, failure policy, receipt), alternating ``--rounds`` times,
   each in a fresh ledger; the best time of each, and the overhead (target: at most 10 %);
2. throughput: the same number of events through one ``Recorder`` from 1 thread, then from 8
   threads (each its own run), in events per second;
3. loop lag: 50 concurrent ``arun`` tasks record 20 events each while a ticker task sleeps
   1 ms at a time and measures how late it wakes; p50, p99 and max lateness (target: at most
   5 ms), beside the same ticker on an idle loop.

``--synchronous`` is the SQLite ``synchronous`` level of every ledger (``GOVLEDGER_SYNCHRONOUS``;
FULL, the default, syncs each append to disk, which then dominates). Timings are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as ``python scripts/bench_recorder.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.crypto.keyfiles import KeyRing
from ledger.recording import Recorder, digest_of
from ledger.store.sqlite import Draft, Ledger, root_key_payload

AGENT = "bench-agent"


def fresh(tmp: Path, name: str) -> Path:
    """A ledger at ``tmp/name.db`` with a recorder key and ``AGENT`` registered (T2)."""
    ring = KeyRing(tmp / "keys")
    root = ring.load_or_create("root")
    rec = ring.load_or_create("recorder")
    path = tmp / f"{name}.db"
    with Ledger.create(path, origin="bench.example/log", root=root) as lg:
        lg.append(Draft("key.registered", root_key_payload(rec, "recorder")), signer=root)
        lg.append(Draft("agent.registered", {"owner": "o", "version": "1", "initial_tier": 2,
                                             "allowed_side_effects": ["read"],
                                             "forbidden_actions": [],
                                             "confidence_threshold_bp": 0}, agent=AGENT),
                  signer=root)  # fmt: skip
    return path


def baseline(tmp: Path, n: int, i: int) -> float:
    path = fresh(tmp, f"base{i}")
    signer = KeyRing(tmp / "keys").load("recorder")
    drafts = [
        Draft(
            "tool.called",
            {"tool": "search", "args_digest": digest_of({"q": k}), "side_effect": "read"},
            agent=AGENT,
            run="r",
        )
        for k in range(n)
    ]
    with Ledger.open(path) as lg:
        lg.append(Draft("run.submitted", {"objective": "o", "user": "u", "risk": "low",
                                          "auto_approve": True}, agent=AGENT, run="r"),
                  signer=signer)  # fmt: skip
        started = time.perf_counter()
        for d in drafts:
            lg.append(d, signer=signer)
        return time.perf_counter() - started


def recorded(tmp: Path, n: int, i: int) -> float:
    path = fresh(tmp, f"rec{i}")
    with Recorder.open(path, keys=tmp / "keys", signer="recorder") as recorder:
        run = recorder.run(agent=AGENT, objective="o", run="r")
        run.begin()
        started = time.perf_counter()
        for k in range(n):
            run.tool_called("search", {"q": k}, "read")
        return time.perf_counter() - started


def throughput(tmp: Path, n: int, threads: int) -> float:
    path = fresh(tmp, f"tp{threads}")
    with Recorder.open(path, keys=tmp / "keys", signer="recorder") as recorder:

        def work(t: int) -> None:
            with recorder.run(agent=AGENT, objective="o", run=f"r{t}") as run:
                for k in range(n // threads - 3):
                    run.tool_called("search", {"q": k}, "read")

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return n / (time.perf_counter() - started)


async def ticker(stop: asyncio.Event, lag: list[float]) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        lag.append(time.perf_counter() - t0 - 0.001)


async def loop_lag(tmp: Path, busy: bool, threads: int = 2) -> list[float]:
    lag: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stop, lag))
    if busy:
        path = fresh(tmp, f"lag{threads}")
        with Recorder.open(path, keys=tmp / "keys", signer="recorder", threads=threads) as recorder:

            async def one(i: int) -> None:
                async with recorder.arun(agent=AGENT, objective="o", run=f"a{i}") as run:
                    for k in range(18):
                        await run.tool_called("search", {"q": k}, "read")

            await asyncio.gather(*(one(i) for i in range(50)))
    else:
        await asyncio.sleep(2)
    stop.set()
    await tick
    return lag


def summary(lag: list[float]) -> str:
    s = sorted(lag)
    p50, p99 = (s[min(len(s) - 1, int(q * len(s)))] * 1000 for q in (0.5, 0.99))
    return f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {s[-1] * 1000:.2f} ms ({len(s)} ticks)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "EXTRA"])
    args = parser.parse_args(argv)
    os.environ["GOVLEDGER_SYNCHRONOUS"] = args.synchronous
    with tempfile.TemporaryDirectory(prefix="govledger-bench-recorder-") as d:
        tmp = Path(d)
        base, rec = [], []
        for i in range(args.rounds):
            base.append(baseline(tmp, args.events, i))
            rec.append(recorded(tmp, args.events, i))
        b, r = min(base), min(rec)
        print(f"synchronous={args.synchronous}, {args.events} events, best of {args.rounds}")
        print(f"Ledger.append      {b:.3f} s  ({args.events / b:,.0f} events/s)")
        print(f"Run.tool_called    {r:.3f} s  ({args.events / r:,.0f} events/s)  "
              f"overhead {100 * (r - b) / b:+.1f} %")  # fmt: skip
        one = throughput(tmp, args.events, 1)
        eight = throughput(tmp, args.events, 8)
        print(f"throughput         1 thread {one:,.0f} events/s, 8 threads {eight:,.0f} "
              f"events/s ({eight / one:.2f}x)")  # fmt: skip
        idle = asyncio.run(loop_lag(tmp, busy=False))
        print(f"loop lag idle      {summary(idle)}")
        for threads in (1, 2, 8):
            busy = asyncio.run(loop_lag(tmp, busy=True, threads=threads))
            print(f"loop lag 50 aruns, {threads} recorder thread(s): {summary(busy)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
