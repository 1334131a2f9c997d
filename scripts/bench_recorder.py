"""Benchmark: what the recording API costs over the store, and what it does to an event loop.

    python scripts/bench_recorder.py [--events 2000] [--rounds 3] [--synchronous FULL]

In a temporary directory, with real keys and SQLite files:

1. overhead: ``--events`` ``tool.called`` events appended one by one with ``Ledger.append``
   (the baseline: drafts built beforehand, digests included) and through ``Run.tool_called``
   (digest of the arguments, draft, failure policy, receipt), alternating ``--rounds`` times,
   each in a fresh ledger; the best time of each, and the overhead (target: at most 10 %);
2. throughput: the same number of events through one ``Recorder`` from 1 thread, then from 8
   threads (each its own run), in events per second;
3. loop lag: ``--runs`` (100) concurrent ``arun`` tasks record ``--each`` (20) events each
   through one recorder (2 and 8 recorder threads; then again with a gate check before each
   tool call) while a ticker task sleeps 1 ms at a time and measures how late it wakes:
   p50, p99, max and the ticks over 5 ms (target: none). At the same time another process
   runs the same ticker on an idle loop: the machine's own noise, to tell apart from the
   recorder's. Beside them, the CPU the loop's own thread spent per tick (a stall of its own
   making, as opposed to waiting for the GIL or a core), and the throughput against the same
   appends from one thread, one run after another (target: at least 0.9x).

``--synchronous`` is the SQLite ``synchronous`` level of every ledger (``GOVLEDGER_SYNCHRONOUS``;
FULL, the default, syncs each append to disk, which then dominates). Timings are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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


async def ticker(stop: asyncio.Event, lag: list[float], busy: list[float]) -> None:
    """Sleep 1 ms at a time; note how late each wake-up is, and how much CPU the loop's own
    thread spent meanwhile (running callbacks: a stall of the loop's making, as opposed to a
    wait for the GIL or for a core)."""
    while not stop.is_set():
        t0, c0 = time.perf_counter(), time.thread_time()
        await asyncio.sleep(0.001)
        lag.append(time.perf_counter() - t0 - 0.001)
        busy.append(time.thread_time() - c0)


async def idle_ticker() -> None:
    """The baseline process: tick until stdin closes, then print the lags as JSON."""
    lag: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(stop, lag, []))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    stop.set()
    await tick
    print(json.dumps(lag))


@dataclass
class Lag:
    lag: list[float]
    busy: list[float]
    idle: list[float]
    """The concurrent idle loop's lags, in another process (the machine's noise)."""
    seconds: float
    events: int
    collections: list[float]
    """Durations of the full (generation 2) garbage collections meanwhile: every thread waits."""


async def loop_lag(
    tmp: Path, runs: int, each: int, threads: int, gate: bool, freeze: bool = False
) -> Lag:
    """``runs`` concurrent ``arun``s recording ``each`` events (each after a gate check with
    ``gate``) through one recorder, while a ticker measures the loop and another process runs
    an idle ticker at the same time."""
    lag: list[float] = []
    busy: list[float] = []
    collections: list[float] = []
    began = [0.0]

    def full_collections(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                began[0] = time.perf_counter()
            else:
                collections.append(time.perf_counter() - began[0])

    stop = asyncio.Event()
    path = fresh(tmp, f"lag{threads}{gate}")
    idle = subprocess.Popen(
        [sys.executable, __file__, "--idle-ticker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert idle.stdout is not None
    idle.stdout.readline()  # "ready": the baseline's loop is ticking
    # Opened and closed outside the measurement: both block (once per process, not per run).
    recorder = Recorder.open(path, keys=tmp / "keys", signer="recorder", threads=threads)
    if freeze:
        gc.collect()
        gc.freeze()

    async def one(i: int) -> None:
        async with recorder.arun(agent=AGENT, objective="o", run=f"a{i}") as run:
            for k in range(each - 3):
                if gate:
                    await run.check_tool("search", "read")
                await run.tool_called("search", {"q": k}, "read")

    gc.callbacks.append(full_collections)
    tick = asyncio.create_task(ticker(stop, lag, busy))
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    seconds = time.perf_counter() - started
    stop.set()
    await tick
    gc.callbacks.remove(full_collections)
    recorder.close()
    if freeze:
        gc.unfreeze()
    out, _ = idle.communicate("")
    return Lag(lag, busy, json.loads(out), seconds, runs * each, collections)


def one_thread(tmp: Path, runs: int, each: int, gate: bool, name: str) -> float:
    """The same appends from one thread, one run after another: events per second."""
    path = fresh(tmp, name)
    with Recorder.open(path, keys=tmp / "keys", signer="recorder") as recorder:
        started = time.perf_counter()
        for i in range(runs):
            with recorder.run(agent=AGENT, objective="o", run=f"s{i}") as run:
                for k in range(each - 3):
                    if gate:
                        run.check_tool("search", "read")
                    run.tool_called("search", {"q": k}, "read")
        return runs * each / (time.perf_counter() - started)


def summary(lag: list[float]) -> str:
    s = sorted(lag)
    p50, p99 = (s[min(len(s) - 1, int(q * len(s)))] * 1000 for q in (0.5, 0.99))
    over = sum(x > 0.005 for x in s)
    return (
        f"p50 {p50:.2f} p99 {p99:.2f} max {s[-1] * 1000:.2f} ms, {over} of {len(s)} ticks over 5 ms"
    )


def overhead(tmp: Path, args: argparse.Namespace) -> None:
    """Parts 1 and 2 of the module docstring."""
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


def lag_report(tmp: Path, args: argparse.Namespace, threads: int, gate: bool) -> None:
    """Part 3 of the module docstring, for one recorder thread count, with or without gate."""
    r = asyncio.run(loop_lag(tmp, args.runs, args.each, threads, gate, args.gc_freeze))
    what = f"{args.runs} aruns x {args.each} events{' + gate' if gate else ''}"
    print(f"loop lag, {what}, {threads} recorder threads (synchronous={args.synchronous}):")
    print(f"  busy loop                 {summary(r.lag)}")
    print(f"  idle loop, other process  {summary(r.idle)}")
    own = sum(b > 0.005 for b in r.busy)
    print(f"  the loop thread's own CPU per tick: max {max(r.busy) * 1000:.2f} ms, "
          f"{own} ticks with over 5 ms of it; {sum(r.busy) / r.events * 1e6:.0f} µs per event")  # fmt: skip
    full = r.collections
    print(f"  full garbage collections: {len(full)}"
          + (f", longest {max(full) * 1000:.1f} ms" if full else ""))  # fmt: skip
    rate = r.events / r.seconds
    seq = one_thread(tmp, args.runs, args.each, gate, f"seq{threads}{gate}")
    print(f"  throughput {rate:,.0f} events/s; one thread {seq:,.0f} events/s ({rate / seq:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "EXTRA"])
    parser.add_argument("--runs", type=int, default=100, help="concurrent aruns (loop lag)")
    parser.add_argument("--each", type=int, default=20, help="events per arun (loop lag)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 8],
                        help="recorder threads (loop lag)")  # fmt: skip
    parser.add_argument("--lag-only", action="store_true", help="only the loop lag (3.)")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() once set up: full collections skip the startup objects",
    )
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval (seconds; Python's default 0.005)")  # fmt: skip
    parser.add_argument("--idle-ticker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.idle_ticker:
        asyncio.run(idle_ticker())
        return 0
    os.environ["GOVLEDGER_SYNCHRONOUS"] = args.synchronous
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    print(f"switch interval {sys.getswitchinterval() * 1000:g} ms, gc.freeze {args.gc_freeze}")
    with tempfile.TemporaryDirectory(prefix="govledger-bench-recorder-") as d:
        tmp = Path(d)
        if not args.lag_only:
            overhead(tmp, args)
        for gate in (False, True):
            for threads in args.threads:
                lag_report(tmp, args, threads, gate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
