"""Benchmark: `govledger report` on a large log, as a user runs it (the installed ``govledger``).

    python scripts/bench_report.py                     # 1,000,000 events, built in the temp dir
    python scripts/bench_report.py --events 200000     # a smaller log, quicker to build
    python scripts/bench_report.py --db l.db --keys l.keys --repeat 2

The log is built (or found) as ``scripts/bench_cli.py`` does, and shared with it. One untimed
``runs list`` first catches the stored read models up (this writes their tables into the
database: give ``--db`` a copy of a log you want left untouched). Then ``report -o FILE`` runs in
its own process: wall time, CPU time, peak RSS (``VmHWM``) and the size of the file, each with its
target (< 60 s, < 300 MB, < 10 MB). With ``--repeat 2`` or more, the files of every run are
compared byte for byte. Timings are printed, never asserted; not part of the test run.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cli import govledger, log_arguments, run_once, the_log

TARGETS = {"seconds": 60.0, "peak_rss_mb": 300.0, "file_mb": 10.0}


def main(argv: list[str] | None = None) -> int:
    ap = log_arguments(__doc__)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs (1; 2+ checks determinism)")
    args = ap.parse_args(argv)
    db, keys = the_log(args, "bench_report")
    cmd = [*govledger(), "--db", str(db), "--keys", str(keys)]
    print("catching the read models up (untimed)", file=sys.stderr)
    run_once([*cmd, "runs", "list", "--limit", "1"])
    import sqlite3

    conn = sqlite3.connect(db)
    (size,) = conn.execute("SELECT max(seq) FROM events").fetchone()
    conn.close()

    out_dir = Path(tempfile.mkdtemp(prefix="govledger-bench-report-"))
    runs: list[dict[str, Any]] = []
    pages: list[bytes] = []
    for i in range(max(1, args.repeat)):
        out = out_dir / f"audit-{i}.html"
        # The same -o for every run would be fairer to determinism, but each file is kept.
        wall, cpu, rss, code = run_once([*cmd, "report", "-o", str(out)])
        if code not in (0, 1) or not out.exists():
            raise SystemExit(f"bench_report: report exited {code}")
        pages.append(out.read_bytes())
        runs.append({"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
                     "peak_rss_mb": round(rss, 1), "file_mb": round(out.stat().st_size / 2**20, 2),
                     "exit_code": code, "file": str(out)})  # fmt: skip
    # The files differ only by the -o path printed in the header's "reproduce with" line.
    same = len({p.replace(f"audit-{i}.html".encode(), b"") for i, p in enumerate(pages)}) == 1
    worst = {k: max(r[k] for r in runs) for k in TARGETS}
    met = {k: worst[k] < t for k, t in TARGETS.items()}
    result = {"events": size, "runs": runs, "worst": worst, "targets": TARGETS, "met": met,
              "byte_identical": same if len(pages) > 1 else None}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"govledger report on a log of {size:,} events ({db})")
    for r in runs:
        print(f"  wall {r['seconds']:.1f} s, CPU {r['cpu_seconds']:.1f} s, peak RSS "
              f"{r['peak_rss_mb']:.0f} MB, file {r['file_mb']:.2f} MB, exit {r['exit_code']}: "
              f"{r['file']}")  # fmt: skip
    for k, t in TARGETS.items():
        print(f"  {k:<12} {worst[k]:>8} < {t:g}: {'met' if met[k] else 'NOT met'}")
    if len(pages) > 1:
        print(f"  byte-identical across runs: {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
