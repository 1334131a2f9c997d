"""Benchmark: the gate's latency per check (``Recorder.check_tool``), SPEC §6.

    python scripts/bench_gate.py [--events 100000] [--agents 1000] [--checks 5000]

Builds a generated ledger (``ledger.sample.build_ledger``: ``--agents`` agents registered, then
runs) in a temporary directory, catches its read models up once, then times checks of random
``(agent, tool, side effect, run)`` picks drawn from the log's own agents and runs:

- ``answer``: what a check costs when nothing new was appended (the read models' catch-up
  finds nothing to fold, then the checks read the agents, runs, grants and tiers tables);
- ``after append``: a check right after one event was appended (a ``tool.called`` of a run
  of the log), so the read models first fold that event: what a gate on a busy log pays;
- ``check_tool``: the whole call, a denial included (recording its ``guardrail.triggered``,
  which the next check folds in).

Prints p50, p99 and max per check in milliseconds, of wall time and of the thread's CPU time
(on a machine shared with other work the wall-time tail is the scheduler's, the CPU time the
gate's own); target: p99 < 1 ms for the answer at 1,000 agents. Timings are printed, never
asserted; the ledger's size is printed with them.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as ``python scripts/bench_gate.py``
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.event.drafts import Draft
from ledger.recording import Recorder
from ledger.recording.gate import Decision, current, judge
from ledger.sample.build import build_ledger
from projections.driver import catch_up

T = TypeVar("T")
SIDE_EFFECTS = ("read", "write", "network", "delete", "payment", "execute")


def percentiles(samples: list[tuple[float, float]]) -> str:
    """p50, p99 and max of the (wall, CPU) samples, in milliseconds."""
    out = []
    for what, i in (("wall", 0), ("cpu", 1)):
        s = sorted(x[i] for x in samples)
        p50, p99 = (s[min(len(s) - 1, int(q * len(s)))] * 1000 for q in (0.50, 0.99))
        out.append(f"{what} p50 {p50:.3f} p99 {p99:.3f} max {s[-1] * 1000:.3f} ms")
    return "; ".join(out)


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, tuple[float, float]]:
    """``fn(*args)`` and its (wall, thread CPU) seconds."""
    w, c = time.perf_counter(), time.thread_time()
    out = fn(*args)
    return out, (time.perf_counter() - w, time.thread_time() - c)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="govledger-bench-gate-") as tmp:
        started = time.perf_counter()
        ledger = build_ledger(Path(tmp) / "l.db", Path(tmp) / "keys", args.events, args.agents,
                              args.seed, synchronous="NORMAL")  # fmt: skip
        built = time.perf_counter() - started
        ledger.close()
        recorder = Recorder.open(Path(tmp) / "l.db", keys=Path(tmp) / "keys", signer="recorder")
        lg = recorder.ledger
        assert lg is not None
        started = time.perf_counter()
        db = lg.read_models()
        catch_up(lg, db)
        replayed = time.perf_counter() - started
        agents = {
            a: json.loads(allowed) + json.loads(forbidden)
            for a, allowed, forbidden in db.execute(
                "SELECT agent, allowed_side_effects, forbidden_actions FROM agents "
                "WHERE registered_seq IS NOT NULL"
            )
        }
        runs = [tuple(r) for r in db.execute("SELECT run, agent FROM runs")]
        tools = [r[0] for r in db.execute("SELECT DISTINCT tools FROM grants LIMIT 50")]
        tool_names = sorted({t for js in tools for t in json.loads(js)} | {"search", "deploy"})
        print(f"ledger: {lg.size} events, {len(agents)} agents, {len(runs)} runs "
              f"(built in {built:.1f} s, read models in {replayed:.1f} s)")  # fmt: skip

        def pick() -> tuple[str, str, str, str | None]:
            run, agent = (
                rng.choice(runs) if rng.random() < 0.8 else (None, rng.choice(list(agents)))
            )
            words = agents.get(agent) or ["read"]
            tool = rng.choice(tool_names + words)
            return agent, tool, rng.choice(SIDE_EFFECTS), run

        def answer_of(agent: str, tool: str, side_effect: str, run: str | None) -> Decision:
            return judge(current(lg), agent, tool, side_effect, run)

        answer: list[tuple[float, float]] = []
        allowed = 0
        for _ in range(args.checks):
            agent, tool, side_effect, run = pick()
            d, t = timed(answer_of, agent, tool, side_effect, run)
            answer.append(t)
            allowed += d.allowed
        print(f"answer      ({args.checks} checks, {allowed} allowed): {percentiles(answer)}")
        folded: list[tuple[float, float]] = []
        for _ in range(max(1, args.checks // 5)):
            agent, tool, side_effect, run = pick()
            if run is None:
                run, agent = rng.choice(runs)
            recorder.record([Draft("tool.called", {"tool": "search", "side_effect": "read",
                                                   "args_digest": "0" * 64},
                                   agent=agent, run=run)])  # fmt: skip
            _, t = timed(answer_of, agent, tool, side_effect, run)
            folded.append(t)
        print(f"after append ({len(folded)} checks, each folding 1 new event): "
              f"{percentiles(folded)}")  # fmt: skip
        full: list[tuple[float, float]] = []
        denied = 0
        for _ in range(max(1, args.checks // 5)):
            agent, tool, side_effect, run = pick()
            d, t = timed(recorder.check_tool, agent, tool, side_effect, run)
            full.append(t)
            denied += not d.allowed
        print(f"check_tool  ({len(full)} checks, {denied} denials recorded): {percentiles(full)}")
        recorder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
