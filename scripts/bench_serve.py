"""Benchmark: appends through ``govledger serve`` (group commit), over real HTTP.

    python -m scripts.bench_serve [--events 2000] [--clients 16] [--batch 100]

Builds a fresh ledger in a temporary directory, starts ``govledger serve --port 0`` in a child
process and appends ``x.bench`` events from HTTP clients (one ``httpx.Client`` per thread, keep-
alive): 1 client, then ``--clients`` clients, sending single events; then batches of
``--batch`` events from 1 and from ``--clients`` clients. For each run it prints events per
second, request latency p50 / p99 as the clients saw it, and the mean group size (requests and
events per commit) from the service's ``/metrics``. The log is verified at the end. Timings
are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ORIGIN = "bench.example/log"


def _cli(env: dict[str, str], db: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "from ledger.cli import main; main()", "--db", str(db), *args],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout


def _metrics(client: httpx.Client) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        m = re.fullmatch(r"(govledger_group_\w+_(?:sum|count|total)) (\S+)", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(url: str, token: str, clients: int, requests: int, batch: int, pid: int) -> dict[str, Any]:
    """``clients`` threads send ``requests`` requests in all, of ``batch`` events each."""
    latencies: list[float] = []
    lock = threading.Lock()
    per = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}

    def work(c: int) -> None:
        mine = []
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(per[c]):
                drafts = [
                    {"type": "x.bench", "agent": f"a{c}", "payload": {"i": i, "k": k}}
                    for k in range(batch)
                ]
                body = json.dumps(drafts[0] if batch == 1 else drafts)
                t = time.perf_counter()
                r = client.post("/v1/events", content=body, headers=headers)
                mine.append(time.perf_counter() - t)
                if r.status_code != 201:
                    raise SystemExit(f"append failed: {r.status_code} {r.text}")
        with lock:
            latencies.extend(mine)

    with httpx.Client(base_url=url) as probe:
        before = _metrics(probe)
        cpu = _cpu(pid)
        threads = [threading.Thread(target=work, args=(c,)) for c in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        cpu = _cpu(pid) - cpu
        after = _metrics(probe)
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    groups = d["govledger_group_requests_count"] or 1
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "clients": clients,
        "batch": batch,
        "requests": requests,
        "events_per_s": requests * batch / wall,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "requests_per_group": d["govledger_group_requests_sum"] / groups,
        "events_per_group": d["govledger_group_events_sum"] / groups,
        "server_cpu": cpu / wall,
        "commit_ms": d["govledger_group_commit_seconds_total"] / groups * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="single events per run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=100, help="batch requests per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {**os.environ, "GOVLEDGER_KEYS": str(Path(tmp) / "keys")}
        _cli(env, db, "init", "--origin", ORIGIN)
        _cli(env, db, "keys", "new", "rec", "--role", "recorder")
        token = _cli(env, db, "tokens", "new", "bench", "--signer", "rec").strip()
        server = subprocess.Popen(
            [sys.executable, "-c", "from ledger.cli import main; main()", "--db", str(db),
             "serve", "--port", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split("listening on ")[1].strip()
            runs = [
                _run(url, token, 1, args.events, 1, server.pid),
                _run(url, token, args.clients, args.events, 1, server.pid),
                _run(url, token, 1, args.batches, args.batch, server.pid),
                _run(url, token, args.clients, args.batches, args.batch, server.pid),
            ]
        finally:
            server.terminate()
            server.wait(timeout=60)
        report = json.loads(_cli(env, db, "verify", "--json"))
    print(f"{'clients':>7} {'batch':>5} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'req/group':>9} {'ev/group':>8} {'server CPU':>10} {'commit ms':>9}")  # fmt: skip
    for r in runs:
        print(f"{r['clients']:>7} {r['batch']:>5} {r['events_per_s']:>9.0f} {r['p50_ms']:>7.1f} "
              f"{r['p99_ms']:>7.1f} {r['requests_per_group']:>9.2f} "
              f"{r['events_per_group']:>8.1f} {r['server_cpu']:>10.0%} {r['commit_ms']:>9.1f}")  # fmt: skip
    print(f"verify: ok={report['ok']} events={report['events']}")


if __name__ == "__main__":
    main()
