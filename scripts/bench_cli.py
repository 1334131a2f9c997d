"""Benchmark: the daily commands on a large log, as a user runs them (the installed ``govledger``).

    python scripts/bench_cli.py                        # 1,000,000 events, built in the temp dir
    python scripts/bench_cli.py --events 200000        # a smaller log, quicker to build
    python scripts/bench_cli.py --db l.db --keys l.keys --json

The log is built once with ``scripts.generate.build_ledger`` in the system temporary directory
(``tempfile.gettempdir()``, or ``--tmp``) and kept there for the next run; ``--db`` uses an
existing ledger instead. One untimed ``runs list`` first catches the stored read models up.
Each command then runs in its own process, its output thrown away; wall and CPU time are the
medians of ``--repeat`` runs (CPU time is steadier than wall time on a shared machine; the
verdict goes by wall time) and peak RSS is that process's ``ru_maxrss``. Every figure is printed with its
target and whether it is met. Timings are printed, never asserted; not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

AGENTS = 20
SEED = 1


LAUNCH = """
import atexit, os, sys
def _peak():
    with open("/proc/self/status") as f:
        hwm = next((line.split()[1] for line in f if line.startswith("VmHWM:")), "0")
    with open(os.environ["GOVLEDGER_BENCH_RSS"], "w") as out:
        out.write(hwm)
if os.path.exists("/proc/self/status"):
    atexit.register(_peak)
from ledger.cli import main
sys.argv[0] = "govledger"
main()
"""
"""Runs ``govledger`` as its entry point does and records the process's own peak RSS
(``VmHWM``). Not ``ru_maxrss`` from ``wait4``: on Linux a child's high-water mark starts at the
parent's RSS when it forks, so the benchmark's own memory would leak into every figure."""


def govledger() -> list[str]:
    return [sys.executable, "-c", LAUNCH]


def run_once(args: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MB, exit code) of one process running ``args``."""
    with tempfile.NamedTemporaryFile(prefix="govledger-bench-rss-", delete=False) as f:
        rss_file = f.name
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "GOVLEDGER_BENCH_RSS": rss_file})  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        text = Path(rss_file).read_text().strip()
    finally:
        os.unlink(rss_file)
    if text:
        rss_mb = int(text) / 1024  # VmHWM is in kB
    else:  # no /proc: the fork-inflated figure is the best there is
        rss_mb = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 1024)
    return wall, usage.ru_utime + usage.ru_stime, rss_mb, proc.returncode


def measure(args: list[str], repeat: int) -> dict[str, float]:
    runs = [run_once(args) for _ in range(repeat)]
    failed = [code for *_, code in runs if code != 0]
    if failed:
        raise SystemExit(f"bench_cli: {' '.join(args)} exited {failed[0]}")
    return {
        "seconds": statistics.median(w for w, _, _, _ in runs),
        "cpu_seconds": statistics.median(c for _, c, _, _ in runs),
        "peak_rss_mb": max(r for _, _, r, _ in runs),
    }


def build(db: Path, keys: Path, events: int) -> None:
    """``scripts/generate.py`` in its own process, so this one stays small."""
    print(f"building {events} events in {db} (once; kept for the next run)", file=sys.stderr)
    started = time.perf_counter()
    part = db.with_name(db.name + ".part")
    part.unlink(missing_ok=True)
    generate = Path(__file__).resolve().with_name("generate.py")
    subprocess.run([sys.executable, str(generate), "--db", str(part), "--keys", str(keys),
                    "--events", str(events), "--agents", str(AGENTS), "--seed", str(SEED)],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    part.rename(db)  # a build cut short is never taken for a finished one
    print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def a_run(db: Path) -> str:
    """A run from the middle of the log (read from the runs read model)."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        (n,) = conn.execute("SELECT count(*) FROM runs").fetchone()
        (run,) = conn.execute(
            "SELECT run FROM runs ORDER BY first_seq LIMIT 1 OFFSET ?", (n // 2,)
        ).fetchone()
    finally:
        conn.close()
    return str(run)


def log_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The options of a benchmark over one large log (built once, then reused)."""
    ap = argparse.ArgumentParser(description=(doc or "").split("\n", 1)[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="events to build (1000000)")
    ap.add_argument("--db", type=Path, help="an existing ledger to measure (default: build one)")
    ap.add_argument("--keys", type=Path, help="its key directory (default: DB.keys)")
    ap.add_argument("--tmp", type=Path, help="where to build (default: the system temp dir)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    return ap


def the_log(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    """The ledger and key directory of ``--db``/``--keys``, or the shared generated log of
    ``--events`` in the temp dir, built when it does not exist yet."""
    tmp = args.tmp or Path(tempfile.gettempdir())
    db = args.db or tmp / f"govledger-bench-cli-{args.events}.db"
    keys = args.keys or db.with_name(db.name + ".keys")
    if not db.exists():
        if args.db is not None:
            raise SystemExit(f"{name}: --db {db} does not exist")
        build(db, keys, args.events)
    return db, keys


def main(argv: list[str] | None = None) -> int:
    ap = log_arguments(__doc__)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each command (3)")
    args = ap.parse_args(argv)
    db, keys = the_log(args, "bench_cli")
    entry = govledger()
    cmd = [*entry, "--db", str(db), "--keys", str(keys)]
    print("catching the read models up (untimed)", file=sys.stderr)
    run_once([*cmd, "runs", "list", "--limit", "1"])
    import sqlite3

    conn = sqlite3.connect(db)
    (size,) = conn.execute("SELECT max(seq) FROM events").fetchone()
    (runs,) = conn.execute("SELECT count(*) FROM runs").fetchone()
    conn.close()
    run = a_run(db)

    # (label, argv, what is compared with the target, target)
    plan: list[tuple[str, list[str], str, float | None]] = [
        ("govledger --help", [*entry, "--help"], "seconds", 0.2),
        (f"runs show {run}", [*cmd, "runs", "show", run], "seconds", 0.3),
        ("runs list (first page)", [*cmd, "runs", "list"], "seconds", 1.0),
        ("findings (first page)", [*cmd, "findings"], "seconds", 1.0),
        ("log (first page)", [*cmd, "log"], "seconds", None),
        ("corrections (first page)", [*cmd, "corrections"], "seconds", None),
        ("runs list --json (all runs)", [*cmd, "runs", "list", "--json"], "peak_rss_mb", 150.0),
        ("findings --json (all)", [*cmd, "findings", "--json"], "peak_rss_mb", None),
    ]
    results: list[dict[str, Any]] = []
    for label, argv_, what, target in plan:
        repeat = 1 if "--json" in argv_ else args.repeat
        m = measure(argv_, repeat)
        value = m[what]
        met = None if target is None else value < target
        results.append({"command": label, "measure": what, "value": round(value, 3),
                        "target": target, "met": met, **{k: round(v, 3) for k, v in m.items()}})  # fmt: skip
    if args.json:
        print(json.dumps({"events": size, "runs": runs, "results": results}, indent=2))
        return 0
    print(f"log of {size} events, {runs} runs ({db})")
    print(f"{'command':<34} {'wall s':>8} {'CPU s':>7} {'peak MB':>8}  target           verdict")
    for r in results:
        unit = "s" if r["measure"] == "seconds" else "MB peak RSS"
        target = "-" if r["target"] is None else f"< {r['target']:g} {unit}"
        verdict = "-" if r["met"] is None else ("met" if r["met"] else "NOT met")
        print(f"{r['command']:<34} {r['seconds']:>8.3f} {r['cpu_seconds']:>7.3f} "
              f"{r['peak_rss_mb']:>8.1f}  "
              f"{target:<16} {verdict}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
