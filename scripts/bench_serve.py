"""Benchmark: appends through ``govledger serve`` over real HTTP, against in-process baselines.

    python -m scripts.bench_serve                  # 3 rounds (~4 minutes), table and targets
    python -m scripts.bench_serve --quick          # 1 round of short runs (~1 minute)
    python -m scripts.bench_serve --json > serve.json
    python -m scripts.bench_serve --rss            # only the peak-RSS run, 10k → 1M events
    python -m scripts.bench_serve --table serve.json   # the report of a saved --json run

A benchmark, not a timed test: figures are printed, never asserted. Everything runs on this
machine, clients and server sharing its cores, ``synchronous = FULL`` everywhere.

The load comes from ``wrk`` (``apt-get install wrk``: a C client that costs little CPU; its
script is ``scripts/bench_serve.lua``), else from a small asyncio client in a child process
(costlier: it is said in the output). Each request waits for its acknowledgement (a closed
loop: N clients = N requests in flight). The service runs as ``govledger serve --port 0`` in a
child process on a fresh ledger (a recorder key, one token); the events are the recorder
drafts of ``scripts/generate.py`` that the baselines append (``scripts/bench.py``), in the same
order, cut into requests and posted in turn; each load renames its run ids (and again on each
pass over the drafts), so no run is continued by a later load, as none is in the baselines.

Each round measures, taking turns (the order alternates between rounds, so a machine that
speeds up or slows down does not favour one side):

- the service: 1 client sending single events; ``--clients`` clients sending single events;
  1 client sending ``--batch`` events per request; and the last two again against a service of
  ``--workers`` server processes (``govledger serve --workers K``, default 2) on a ledger of
  its own. The batches go to a service of their own on a fresh ledger each round, as the
  in-process baseline appends into a fresh file: the cost of an append grows with the log (10%
  from 30k to 1M events here, in-process and served alike), so both sides start empty;
- the baselines, in-process, in their own processes (``scripts/bench.py``'s workers, reused):
  eventsourcing's ``Application.save`` of one event per save (durable single saves) and
  govledger's own ``append_many`` of ``--batch`` events (the in-process batched append).

Ratios are taken against the same round's baseline; the table gives medians over the rounds.
Measured once per run: the floors of this machine (raw ``fdatasync`` per second on the same
disk, and the same HTTP stack with an endpoint that does nothing, at 1 and ``--clients``
clients) and where the CPU of one request goes (in-process timings of each stage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts import bench  # noqa: E402  (the in-process baselines' workers)

ORIGIN = "bench.example/log"
LUA = Path(__file__).with_name("bench_serve.lua")
TICK = os.sysconf("SC_CLK_TCK")
GROUP_SIZES = (1, 2, 4, 8, 16, 32)
"""Group sizes at which the CPU of chaining and inserting is timed (``stages``)."""

# --- processes and their CPU and memory -----------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live children (the signing
    workers)."""
    total = 0.0
    for p in _descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def _memory(pid: int) -> dict[str, float]:
    """Peak and current RSS (MB) of ``pid``, and the largest peak of its children."""

    def status(p: int) -> dict[str, float]:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            return {}
        return {
            k: int(v.split()[0]) / 1024
            for k, v in re.findall(r"^(VmHWM|VmRSS):\s+(.*)$", text, re.MULTILINE)
        }

    me = status(pid)
    kids = [status(p).get("VmHWM", 0.0) for p in _descendants(pid)[1:]]
    return {
        "peak_rss_mb": me.get("VmHWM", 0.0),
        "rss_mb": me.get("VmRSS", 0.0),
        "workers_peak_rss_mb": max(kids, default=0.0),
    }


def _cli(env: dict[str, str], db: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "from ledger.cli import main; main()", "--db", str(db), *args],
        env=env, check=False, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"govledger {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


class Served:
    """A server child process printing ``listening on URL``; stopped with SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            raise SystemExit(f"the server did not start: {line!r}")
        self.url = line.split("listening on ")[1].strip()
        self.pid = self.proc.pid

    def get(self, path: str) -> str:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=60) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode()

    def metrics(self) -> dict[str, float]:
        out = {}
        for line in self.get("/metrics").splitlines():
            m = re.fullmatch(r"(govledger_\w+) (\S+)", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- load -------------------------------------------------------------------------------------


_LOADS = [0]
"""Loads started by this process: each renames its run ids with a tag of its own."""


def load(url: str, bodies: Path, token: str, clients: int, seconds: float) -> dict[str, Any]:
    """Closed-loop POSTs of the request bodies of ``bodies`` (one per line, in turn) from
    ``clients`` connections for ``seconds``: requests, duration, latency percentiles, errors
    and the client's own CPU seconds. Run ids are renamed per load and per pass over the file
    (``scripts/bench_serve.lua``), so no run is continued by a later load."""
    _LOADS[0] += 1
    tag = f"L{_LOADS[0]}c"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if shutil.which("wrk"):
        argv = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency",
                "--timeout", "60s", "-s", str(LUA), url, "--", str(bodies), token, tag]  # fmt: skip
    else:
        argv = [sys.executable, __file__, "--client",
                json.dumps([url, str(bodies), token, clients, seconds, tag])]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"load client failed: {proc.stderr.strip() or proc.stdout.strip()}")
    out: dict[str, Any] = json.loads(lines[-1])
    out["client_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    out["client"] = "wrk" if shutil.which("wrk") else "asyncio"
    return out


async def _client(
    url: str, bodies: list[bytes], token: str, clients: int, seconds: float, tag: str
) -> None:
    """The fallback load client: ``clients`` keep-alive connections, each posting the next of
    ``bodies`` (run ids renamed as ``scripts/bench_serve.lua`` does) and waiting for the
    answer, for ``seconds``."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    latencies: list[float] = []
    errors = [0]
    end = time.perf_counter() + seconds
    turn = [0]

    def next_request() -> bytes:
        cycle, i = divmod(turn[0], len(bodies))
        turn[0] += 1
        body = bodies[i]
        if tag:
            body = body.replace(b'"run-', f'"run-{tag}{cycle}-'.encode())
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head + body

    async def one() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < end:
            t = time.perf_counter()
            writer.write(next_request())
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            if not status.startswith(b"HTTP/1.1 2"):
                errors[0] += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(clients)))
    duration = time.perf_counter() - started
    q = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else [0] * 99
    )
    print(json.dumps({
        "requests": len(latencies), "duration_us": duration * 1e6, "status_errors": errors[0],
        "socket_errors": 0, "p50_us": q[49] * 1e6, "p90_us": q[89] * 1e6, "p99_us": q[98] * 1e6,
        "max_us": max(latencies) * 1e6, "mean_us": statistics.fmean(latencies) * 1e6,
    }))  # fmt: skip


def measure(
    server: Served, bodies: Path, token: str, clients: int, batch: int, seconds: float
) -> dict[str, Any]:
    """One load run against ``server``: throughput, latency, server CPU and group commits."""
    has_metrics = "govledger" in Path(f"/proc/{server.pid}/cmdline").read_text()
    before = server.metrics() if has_metrics else {}
    cpu = _cpu(server.pid)
    r = load(server.url, bodies, token, clients, seconds)
    cpu = _cpu(server.pid) - cpu
    after = server.metrics() if has_metrics else {}
    if r["status_errors"] or r["socket_errors"]:
        raise SystemExit(f"{clients}×{batch}: {r['status_errors']} error answers, "
                         f"{r['socket_errors']} socket errors")  # fmt: skip
    wall = r["duration_us"] / 1e6
    events = r["requests"] * batch
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    groups = d.get("govledger_group_events_count", 0.0)
    out = {
        "clients": clients,
        "batch": batch,
        "requests": r["requests"],
        "events": events,
        "seconds": wall,
        "events_per_s": events / wall,
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "server_cpu_s": cpu,
        "server_cpu_us_per_event": cpu / max(events, 1) * 1e6,
        "client_cpu_us_per_event": r["client_cpu_s"] / max(events, 1) * 1e6,
        "cpu_us_per_event": (cpu + r["client_cpu_s"]) / max(events, 1) * 1e6,
        "client": r["client"],
    }
    if groups:
        out.update(
            groups=groups,
            events_per_group=d["govledger_group_events_sum"] / groups,
            requests_per_group=d["govledger_group_requests_sum"] / groups,
            syncs_per_event=groups / max(d["govledger_group_events_sum"], 1),
            commit_ms=d["govledger_group_commit_seconds_total"] / groups * 1000,
        )
    answered = d.get("govledger_append_requests_total", 0.0)
    if answered:
        # A request's wall time, in means: as the client saw it, inside the server's handler,
        # and the handler's part spent reading and validating the body.
        out.update(
            client_ms=r["mean_us"] / 1000,
            server_ms=d["govledger_append_seconds_sum"] / answered * 1000,
            read_ms=d.get("govledger_append_read_seconds_total", 0.0) / answered * 1000,
        )
    return out


# --- the floors of this machine ---------------------------------------------------------------


def sync_floor(directory: Path, seconds: float) -> dict[str, Any]:
    """Appending 100 bytes to a file and ``fdatasync`` it (what SQLite's WAL commit does at
    ``synchronous = FULL``), as many times as the disk allows in ``seconds``."""
    path = directory / "fsync.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    n, started = 0, time.perf_counter()
    try:
        while time.perf_counter() - started < seconds:
            os.write(fd, b"x" * 100)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        path.unlink()
    wall = time.perf_counter() - started
    return {"syncs_per_s": n / wall, "ms_per_sync": wall / n * 1000}


def floor_app() -> Any:
    """The service's HTTP stack (Starlette, uvicorn through ``ledger.service.server``) with an
    append endpoint that reads the body and answers a receipt, doing nothing else."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def nothing(request: Request) -> Response:
        await request.body()
        return JSONResponse([{"seq": 1, "id": "x", "ts": "x", "hash": "x"}], status_code=201)

    return Starlette(routes=[Route("/v1/events", nothing, methods=["POST"])])


def serve_floor() -> None:
    from ledger.service.server import listen, run

    sock = listen("127.0.0.1", 0)
    print(f"floor: listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    run(floor_app(), sock)


# --- where the CPU of one request goes ---------------------------------------------------------


def _per_call(fn: Callable[[], object], n: int) -> float:
    """CPU microseconds per call of ``fn`` (process time, best of three)."""
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, time.process_time() - t)
    return best / n * 1e6


def stages(tmp: Path, keys: Path, single: bytes, batch: bytes, token: str) -> dict[str, float]:
    """In-process CPU microseconds of each step of an append request, on a scratch ledger
    (``synchronous = NORMAL``: WAL commits without a sync; the sync is measured apart, as the sync floor and the commit time
    the service reports)."""
    from ledger.crypto.keyfiles import KeyRing
    from ledger.crypto.signing import event_hash, sign_event
    from ledger.service import app, bodies, tokens
    from ledger.store.sqlite import Ledger, root_key_payload

    ring = KeyRing(keys)
    root, rec = ring.load("root"), ring.load("recorder")
    db = tmp / "stages.db"
    ledger = Ledger.create(db, origin=ORIGIN, root=root, synchronous="NORMAL")
    from ledger.store.sqlite import Draft

    ledger.append(Draft("key.registered", root_key_payload(rec, "recorder")), signer=root)
    tokens.ensure_table(ledger)
    secret = tokens.new_token(ledger, "stages", signer="recorder", agent=None, types=[""])
    out: dict[str, float] = {}
    # An append's token: found once, then from the service's cache. The writer's check of
    # revocation (one query per group, inside its transaction) is timed as ``auth_query``.
    service = app.Service(ledger=ledger, keyring=ring)
    out["auth"] = _per_call(lambda: service.cached_token(secret), 2000)
    out["auth_query"] = _per_call(lambda: tokens.lookup(ledger, secret), 2000)

    token = service.cached_token(secret)
    assert token is not None

    def validate(body: bytes) -> list[Any]:
        # As an append does: read the quick way, the token's checks, validation.
        return bodies.accepted(body, "application/json", token)

    out["validate"] = _per_call(lambda: validate(single), 2000)
    out["validate_batch_per_event"] = _per_call(lambda: validate(batch), 40) / 100
    digest = event_hash(b"x" * 300)
    out["sign"] = _per_call(lambda: sign_event(rec.secret_key, digest), 2000)
    one = validate(single)
    # A group of k single-event requests of one key: one transaction, one batch (as the
    # writer appends them), per event, signing apart.
    for k in GROUP_SIZES:
        group = one * k

        def append_group(group: list[Any] = group) -> None:
            with ledger.write() as tx:
                tx.append(group, signer=rec)

        out[f"append_group_{k}"] = _per_call(append_group, max(20, 800 // k)) / k - out["sign"]
    many = validate(batch)

    def append_batch() -> None:
        with ledger.write() as tx:
            tx.append(many, signer=rec)

    # Signed in this process for this timing (no workers): the CPU of the whole batch.
    from ledger.crypto import pool

    pool.MIN_SIGN = 1 << 30
    out["append_batch_per_event_off"] = _per_call(append_batch, 20) / 100 - out["sign"]
    receipt = [{"seq": 1, "id": "0" * 36, "ts": "2025-01-01T00:00:00.000000Z", "hash": "0" * 64}]
    import orjson

    out["receipt_json"] = _per_call(lambda: orjson.dumps(receipt), 5000)
    ledger.close()
    return out


# --- the run ----------------------------------------------------------------------------------


@contextmanager
def service(tmp: Path, name: str, workers: int = 1) -> Iterator[tuple[Served, str, Path]]:
    """A fresh ledger with a recorder key and a token, served by ``workers`` server
    processes (``serve --workers``); (server, token, db)."""
    db = tmp / f"{name}.db"
    # The verifier's trust-on-first-use state stays in the run's own directory.
    env = {
        **os.environ,
        "GOVLEDGER_KEYS": str(tmp / f"{name}-keys"),
        "GOVLEDGER_STATE": str(tmp / f"{name}-state"),
    }
    _cli(env, db, "init", "--origin", ORIGIN)
    _cli(env, db, "keys", "new", "rec", "--role", "recorder")
    token = _cli(env, db, "tokens", "new", "bench", "--signer", "rec").strip()
    server = Served(
        [sys.executable, "-c", "from ledger.cli import main; main()", "--db", str(db), "serve",
         "--port", "0", "--workers", str(workers)],
        env,
    )  # fmt: skip
    try:
        yield server, token, db
    finally:
        server.stop()
    report = json.loads(_cli(env, db, "verify", "--json"))
    if not report["ok"]:
        raise SystemExit(f"verify failed after the run: {report['problems'][:2]}")


def baseline(base: dict[str, Any], tmp: Path, scenario: str, impl: str, n: int) -> dict[str, Any]:
    db = tmp / f"{scenario}-{impl}.db"
    r = bench.spawn({**base, "scenario": scenario, "impl": impl, "n": n, "db": str(db)})
    for p in tmp.glob(f"{scenario}-{impl}.db*"):
        p.unlink()
    if "error" in r:
        raise SystemExit(f"baseline {impl} {scenario} failed: {r['error']}")
    r["cpu_us_per_event"] = r["cpu_s"] / max(r["events"], 1) * 1e6
    return r


def _drafts_file(jsonl: Path, need: int) -> None:
    """The workload's recorder drafts as import lines (``scripts/bench.py``'s setup worker)."""
    r = bench.spawn({"scenario": "setup", "impl": "input", "need": need, "jsonl": str(jsonl)})
    if "error" in r or not jsonl.exists():
        raise SystemExit(f"generating the input failed: {r.get('error', 'no file written')}")


def _bodies(jsonl: Path, size: int, out: Path) -> bytes:
    """The drafts of ``jsonl`` cut into request bodies of ``size`` (one draft: an object, more:
    an array), one per line of ``out``, in the stream's order; the first body."""
    first = b""
    with jsonl.open("rb") as lines, out.open("wb") as f:
        batch: list[bytes] = []
        for line in lines:
            batch.append(line.strip())
            if len(batch) == size:
                body = batch[0] if size == 1 else b"[" + b",".join(batch) + b"]"
                first = first or body
                f.write(body + b"\n")
                batch = []
    return first


def log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from ledger.crypto.keyfiles import KeyRing
    from ledger.service.server import stack

    quiet = args.json
    ring = KeyRing(tmp / "keys")
    ring.create("root")
    ring.create("recorder")
    jsonl = tmp / "input.jsonl"
    need = max(args.single, args.batched, args.batch)
    _drafts_file(jsonl, need)
    # The service appends the stream the baselines append: the same drafts in the same order.
    single_body, batch_body = tmp / "single.jsonl", tmp / "batch.jsonl"
    single, batch = _bodies(jsonl, 1, single_body), _bodies(jsonl, args.batch, batch_body)
    base = {"keys": str(tmp / "keys"), "jsonl": str(jsonl), "profile": False}
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0],
                    "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
                    "stack": stack(), "client": "wrk" if shutil.which("wrk") else "asyncio"},
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "tmp")},
    }  # fmt: skip

    log(f"floors: fdatasync for {args.seconds:.0f} s, the HTTP stack's do-nothing endpoint", quiet)
    out["sync_floor"] = sync_floor(tmp, args.seconds)
    floor = Served([sys.executable, __file__, "--floor-server"], dict(os.environ))
    try:
        out["http_floor"] = {
            str(c): measure(floor, single_body, "", c, 1, args.seconds) for c in (1, args.clients)
        }
    finally:
        floor.stop()

    log("stages: in-process CPU of each step of a request", quiet)
    out["stages"] = stages(tmp, tmp / "keys", single, batch, "")

    rounds: list[dict[str, Any]] = []
    k = args.workers
    with ExitStack() as services:
        server, token, _db = services.enter_context(service(tmp, "serve"))
        # The same ledger setup served by --workers K server processes.
        multi, multi_token, _ = (
            services.enter_context(service(tmp, "servek", k)) if k > 1 else (server, token, _db)
        )
        load(server.url, single_body, token, args.clients, 1)  # warm up (imports, caches)
        if k > 1:
            load(multi.url, single_body, multi_token, args.clients, 1)
        serial = iter(range(1_000_000))

        def batches(name: str, workers: int) -> dict[str, Any]:
            """1 client × --batch on a service of its own over a fresh ledger, as the in-process
            baseline appends into a fresh file each round: a log's size moves the cost of an
            append by itself (in-process, 10% slower at 1M events than at 30k here)."""
            with service(tmp, f"{name}-{next(serial)}", workers) as (srv, tok, db):
                load(srv.url, batch_body, tok, 1, 1)  # warm up (imports, caches)
                r = measure(srv, batch_body, tok, 1, args.batch, args.seconds)
                r["memory"] = _memory(srv.pid)
            for p in tmp.glob(f"{db.name}*"):
                p.unlink()
            return r

        for i in range(args.rounds):
            log(f"round {i + 1}/{args.rounds}", quiet)
            jobs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("serve_1x1", lambda: measure(server, single_body, token, 1, 1, args.seconds)),
                ("serve_Nx1", lambda: measure(server, single_body, token, args.clients, 1, args.seconds)),
                ("serve_1xB", lambda: batches("batch", 1)),
                # The same with --workers K (one connection is served by one process: 1 × B
                # gains only from the other process's idle writer, if at all).
                *([("servek_Nx1", lambda: measure(multi, single_body, multi_token, args.clients, 1, args.seconds)),
                   ("servek_1xB", lambda: batches("batchk", k))]
                  if k > 1 else []),
                ("es_single", lambda: baseline(base, tmp, "single", "eventsourcing-app", args.single)),
                ("gl_batch", lambda: baseline(base, tmp, f"batch{args.batch}", "govledger", args.batched)),
                # The disk's sync rate moves with what else runs: each round has its own.
                ("sync", lambda: sync_floor(tmp, min(2.0, args.seconds))),
            ]  # fmt: skip
            if i % 2:
                jobs.reverse()
            got: dict[str, Any] = {}
            for name, job in jobs:
                got[name] = r = job()
                rate = r.get("events_per_s", r.get("syncs_per_s", 0.0))
                log(
                    f"  {name:<10} {rate:>9,.0f} {'syncs' if name == 'sync' else 'events'}/s", quiet
                )
            rounds.append(got)
        # The highest of the services', the batches' own included.
        memories = [_memory(server.pid), *(r["serve_1xB"]["memory"] for r in rounds)]
        out["memory"] = {key: max(m[key] for m in memories) for key in memories[0]}
    out["machine"]["load_after"] = os.getloadavg()[0]
    out["rounds"] = rounds
    out["summary"] = summarize(out)
    return out


def _med(rounds: list[dict[str, Any]], name: str, key: str) -> float:
    return statistics.median(r[name][key] for r in rounds)


def summarize(out: dict[str, Any]) -> dict[str, Any]:
    rounds = out["rounds"]

    def ratio(a: str, b: str) -> list[float]:
        return [r[a]["events_per_s"] / r[b]["events_per_s"] for r in rounds]

    s = {
        name: {
            k: _med(rounds, name, k)
            for k in rounds[0][name]
            if isinstance(rounds[0][name][k], int | float)
            and not isinstance(rounds[0][name][k], bool)
        }
        for name in rounds[0]
    }
    s["ratios"] = {
        "group_speedup": ratio("serve_Nx1", "serve_1x1"),
        "single_vs_es": ratio("serve_Nx1", "es_single"),
        "batch_vs_inprocess": ratio("serve_1xB", "gl_batch"),
    }
    if "servek_Nx1" in rounds[0]:
        s["ratios"].update(
            workers_speedup=ratio("servek_Nx1", "serve_Nx1"),
            single_vs_es_workers=ratio("servek_Nx1", "es_single"),
            batch_vs_inprocess_workers=ratio("servek_1xB", "gl_batch"),
        )
    return s


def targets(out: dict[str, Any]) -> list[tuple[str, str, bool]]:
    s = out["summary"]
    r = {k: statistics.median(v) for k, v in s["ratios"].items()}
    n = out["settings"]["clients"]
    b = out["settings"]["batch"]
    rows = [
        (f"mean group at {n} clients ≥ 5 events (≤ 0.2 syncs per event)",
         f"{s['serve_Nx1']['events_per_group']:.1f} events ({s['serve_Nx1']['syncs_per_event']:.2f} syncs/event)",
         s["serve_Nx1"]["events_per_group"] >= 5),
        (f"{n} clients ≥ 1.5× 1 client", f"{r['group_speedup']:.2f}×", r["group_speedup"] >= 1.5),
        (f"{n} clients, single events ≥ 1.0× eventsourcing single saves",
         f"{r['single_vs_es']:.2f}×", r["single_vs_es"] >= 1.0),
        (f"{n} clients p99 < 50 ms", f"{s['serve_Nx1']['p99_ms']:.1f} ms (p50 {s['serve_Nx1']['p50_ms']:.1f})",
         s["serve_Nx1"]["p99_ms"] < 50),
        (f"1 client × {b} ≥ 0.8× in-process append_many({b})", f"{r['batch_vs_inprocess']:.2f}×",
         r["batch_vs_inprocess"] >= 0.8),
    ]  # fmt: skip
    k = out["settings"].get("workers", 1)
    if "single_vs_es_workers" in r:
        rows += [
            (f"--workers {k}: {n} clients, single events ≥ 1.0× eventsourcing single saves",
             f"{r['single_vs_es_workers']:.2f}× ({r['workers_speedup']:.2f}× one process)",
             r["single_vs_es_workers"] >= 1.0),
            (f"--workers {k}: {n} clients p99 < 50 ms",
             f"{s['servek_Nx1']['p99_ms']:.1f} ms (p50 {s['servek_Nx1']['p50_ms']:.1f})",
             s["servek_Nx1"]["p99_ms"] < 50),
            (f"--workers {k}: 1 client × {b} ≥ 0.8× in-process append_many({b})",
             f"{r['batch_vs_inprocess_workers']:.2f}×", r["batch_vs_inprocess_workers"] >= 0.8),
        ]  # fmt: skip
    return rows


def print_report(out: dict[str, Any]) -> None:
    m, s = out["machine"], out["summary"]
    n = out["settings"]["clients"]
    print(f"machine: {m['cpus']} CPUs, load {m['load_before']:.1f} at the start, "
          f"{m.get('load_after', float('nan')):.1f} at the end, Python {m['python']}, "
          f"SQLite {m['sqlite']}, server stack {m['stack']}, load client {m['client']}; "
          f"synchronous = FULL; {len(out['rounds'])} round(s), medians")  # fmt: skip
    print()
    head = f"{'run':<44} {'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'ev/group':>8} {'CPU µs/ev':>9} {'server':>7} {'client':>7}"
    print(head)
    print("-" * len(head))
    names = {
        "serve_1x1": "service, 1 client × 1 event",
        "serve_Nx1": f"service, {n} clients × 1 event",
        "serve_1xB": f"service, 1 client × {out['settings']['batch']} events",
        "servek_Nx1": f"--workers {out['settings'].get('workers')}, {n} clients × 1 event",
        "servek_1xB": f"--workers {out['settings'].get('workers')}, 1 client × {out['settings']['batch']} events",
        "es_single": "eventsourcing Application.save, 1 per save",
        "gl_batch": f"govledger in-process append_many({out['settings']['batch']})",
    }
    for key, label in names.items():
        if key not in s:
            continue
        r = s[key]
        served = "server_cpu_us_per_event" in r
        print(f"{label:<44} {r['events_per_s']:>9,.0f} "
              f"{r['p50_ms'] if served else float('nan'):>7.1f} {r['p99_ms'] if served else float('nan'):>7.1f} "
              f"{r.get('events_per_group', float('nan')):>8.1f} {r['cpu_us_per_event']:>9.0f} "
              f"{r.get('server_cpu_us_per_event', float('nan')):>7.0f} {r.get('client_cpu_us_per_event', float('nan')):>7.0f}")  # fmt: skip
    print(
        "CPU µs/ev: user + system CPU per event of the whole run (server, its signing workers "
        "and the load client; in-process: the one process); server, client: the two parts."
    )
    print()
    f, h = out["sync_floor"], out["http_floor"]
    print(f"floors: fdatasync {f['syncs_per_s']:,.0f}/s ({f['ms_per_sync']:.2f} ms each) = the "
          "most durable commits per second one writer can make here; HTTP stack with a "
          f"do-nothing endpoint: {h['1']['events_per_s']:,.0f} requests/s at 1 client, "
          f"{h[str(n)]['events_per_s']:,.0f}/s at {n} (p50 {h[str(n)]['p50_ms']:.1f} ms, p99 "
          f"{h[str(n)]['p99_ms']:.1f} ms; server {h[str(n)]['server_cpu_us_per_event']:.0f} µs CPU "
          "per request)")  # fmt: skip
    per_round = [r["sync"]["syncs_per_s"] for r in out["rounds"] if "sync" in r]
    if per_round:
        print(f"fdatasync during the rounds: {', '.join(f'{x:,.0f}' for x in per_round)} per "
              "second (the disk's rate moves with what else runs on the machine)")  # fmt: skip
    st = out["stages"]
    nx1 = s["serve_Nx1"]
    commit_per_event = (
        nx1.get("commit_ms", 0.0) / max(nx1.get("events_per_group", 1.0), 1e-9) * 1000
    )
    size = nx1.get("events_per_group", 1.0)
    k = min(GROUP_SIZES, key=lambda g: abs(math.log(g / max(size, 1.0))))
    parts = [
        ("HTTP (do-nothing endpoint, server CPU)", h[str(n)]["server_cpu_us_per_event"]),
        ("auth (cached token)", st["auth"]),
        ("parse + validate", st["validate"]),
        (f"chain + insert (group of {k}, no sync)", st[f"append_group_{k}"]),
        ("sign (Ed25519)", st["sign"]),
    ]
    known = sum(v for _, v in parts)
    print()
    print(
        f"where the server's CPU goes per request ({n} clients × 1 event; in-process timings "
        "of each step):"
    )
    for label, v in parts:
        print(f"  {label:<40} {v:>7.0f} µs")
    print(
        f"  {'rest (event loop, queue, threads, log)':<40} "
        f"{nx1['server_cpu_us_per_event'] - known:>7.0f} µs"
    )
    print(f"  {'= measured server CPU per request':<40} {nx1['server_cpu_us_per_event']:>7.0f} µs")
    print(
        f"  commit (wall, with its sync): {nx1.get('commit_ms', 0.0):.1f} ms per group of "
        f"{nx1.get('events_per_group', 0.0):.1f} = {commit_per_event:.0f} µs per event"
    )
    if "append_group_1" in st:
        print(
            f"  1 client × 1 event: chain + insert {st['append_group_1']:.0f} µs (a transaction "
            f"each); server CPU {s['serve_1x1']['server_cpu_us_per_event']:.0f} µs per request"
        )
    print(
        f"  batches of {out['settings']['batch']}: validate {st['validate_batch_per_event']:.0f}"
        f" µs, chain + insert {st['append_batch_per_event_off']:.0f} µs, sign {st['sign']:.0f} µs"
        " per event"
    )
    b1 = s["serve_1xB"]
    if "server_ms" in b1:
        writer = b1["commit_ms"] * b1.get("requests_per_group", 1.0)
        print()
        print(
            f"where the wall time of a request of 1 client × {out['settings']['batch']} goes "
            "(means, from /metrics and the client):"
        )
        for label, v in (
            ("HTTP and the client (outside the handler)", b1["client_ms"] - b1["server_ms"]),
            ("reading and validating the body", b1["read_ms"]),
            ("writer: chain, sign, insert, commit + sync", writer),
            (
                "queue and hand-offs to and from the writer",
                b1["server_ms"] - b1["read_ms"] - writer,
            ),
        ):
            print(f"  {label:<44} {v:>6.2f} ms")
        print(f"  {'= the latency the client saw':<44} {b1['client_ms']:>6.2f} ms")
    print()
    print(
        f"server memory: peak RSS {out['memory']['peak_rss_mb']:.0f} MB (signing workers "
        f"{out['memory']['workers_peak_rss_mb']:.0f} MB each at most)"
    )
    print()
    print("targets:")
    for what, got, ok in targets(out):
        print(f"  {'met    ' if ok else 'NOT MET'}  {what}: {got}")
    ratios = s["ratios"]
    if len(out["rounds"]) > 1:
        print("  per-round ratios: " + "; ".join(
            f"{k} {', '.join(f'{v:.2f}' for v in vs)}" for k, vs in ratios.items()))  # fmt: skip


# --- peak RSS from 10k to 1M events ----------------------------------------------------------


def rss_run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Batches of ``--batch`` events from 4 clients until the log holds each of the sizes of
    ``--rss-sizes``; the server's peak RSS at each."""
    from ledger.crypto.keyfiles import KeyRing

    quiet = args.json
    ring = KeyRing(tmp / "keys")
    ring.create("root")
    ring.create("recorder")
    jsonl = tmp / "input.jsonl"
    _drafts_file(jsonl, args.batched)
    body = tmp / "batch.jsonl"
    _bodies(jsonl, args.batch, body)
    sizes = sorted(int(float(x)) for x in args.rss_sizes.split(","))
    points: list[dict[str, Any]] = []
    started = time.perf_counter()
    with service(tmp, "rss") as (server, token, db):
        for target in sizes:
            while (size := json.loads(server.get("/healthz"))["size"]) < target:
                left = (target - size) / args.batch
                # Short loads near the target, so the measure is taken close to it.
                load(server.url, body, token, 4, max(1.0, min(20.0, left / 400)))
            point = {"events": size, "seconds": time.perf_counter() - started,
                     "db_mb": db.stat().st_size / 2**20, **_memory(server.pid)}  # fmt: skip
            points.append(point)
            log(f"  {size:>9,} events: peak RSS {point['peak_rss_mb']:.0f} MB, RSS "
                f"{point['rss_mb']:.0f} MB, workers {point['workers_peak_rss_mb']:.0f} MB, "
                f"{point['seconds']:.0f} s", quiet)  # fmt: skip
    return {"points": points}


def print_rss(out: dict[str, Any]) -> None:
    pts = out["points"]
    print(
        f"{'events':>10} {'peak RSS MB':>11} {'RSS MB':>7} {'worker MB':>9} {'db MB':>7} {'s':>6}"
    )
    for p in pts:
        print(f"{p['events']:>10,} {p['peak_rss_mb']:>11.0f} {p['rss_mb']:>7.0f} "
              f"{p['workers_peak_rss_mb']:>9.0f} {p['db_mb']:>7.0f} {p['seconds']:>6.0f}")  # fmt: skip
    first, last = pts[0]["peak_rss_mb"], pts[-1]["peak_rss_mb"]
    flat = last <= first * 1.10 + 5
    print(
        f"target: peak RSS flat from {pts[0]['events']:,} to {pts[-1]['events']:,} events "
        f"(within 10 % + 5 MB): {'met' if flat else 'NOT MET'} ({first:.0f} → {last:.0f} MB)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds, sides alternating (3)")
    ap.add_argument(
        "--seconds", type=float, default=8.0, help="seconds of load per service run (8)"
    )
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    ap.add_argument("--batch", type=int, default=100, help="events per batched request (100)")
    ap.add_argument("--workers", type=int, default=2,
                    help="server processes (serve --workers) of the second service measured "
                         "beside the one-process service (2; 1: only the one-process service)")  # fmt: skip
    ap.add_argument("--single", type=int, default=5000,
                    help="events of the eventsourcing single-save baseline (5000)")  # fmt: skip
    ap.add_argument("--batched", type=int, default=50_000,
                    help="events of the in-process batched baseline (50000)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="1 round of short runs (a smoke run)")
    ap.add_argument("--rss", action="store_true", help="only the peak-RSS run (--rss-sizes)")
    ap.add_argument("--rss-sizes", default="1e4,1e5,1e6", help="log sizes of the RSS run")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--tmp", type=Path, help="directory for the files (default: TMPDIR)")
    ap.add_argument("--table", type=Path, help="print the report of a saved --json output")
    ap.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--client", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.floor_server:
        serve_floor()
        return 0
    if args.client:
        url, path, token, clients, seconds, tag = json.loads(args.client)
        bodies = [b for b in Path(path).read_bytes().split(b"\n") if b]
        asyncio.run(_client(url, bodies, token, clients, seconds, tag))
        return 0
    if args.table:
        saved = json.loads(args.table.read_text(encoding="utf-8"))
        (print_rss if "points" in saved else print_report)(saved)
        return 0
    if args.quick:
        args.rounds, args.seconds, args.single, args.batched = 1, 3.0, 2000, 10_000
    tmp = Path(tempfile.mkdtemp(prefix="govledger-serve-", dir=args.tmp))
    try:
        out = rss_run(args, tmp) if args.rss else run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=2))
    elif args.rss:
        print_rss(out)
    else:
        print_report(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
