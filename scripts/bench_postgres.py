"""Benchmark: govledger's PostgreSQL store against eventsourcing's PostgreSQL recorder.

    python scripts/bench_postgres.py                                   # defaults below
    python scripts/bench_postgres.py --events 20000 --single 1000 --rounds 3
    python scripts/bench_postgres.py --pg postgresql://postgres@db.example:5432/test

Both sides write to the same server in the same run, each run into a fresh database of its own
(``gl_bench_<random>_...``, all dropped at the end), every measurement in a fresh Python process
(the helpers of ``scripts/bench.py``: the same recorder-signed input, medians over rounds whose
order alternates, per-round ratios, client CPU and peak RSS). Scenarios:

- ``batch100``: govledger ``append_many`` of 100 events per transaction against eventsourcing's
  ``PostgresApplicationRecorder`` storing the same events unsigned, 100 per ``insert_events``
  (mapped to stored events by its own mapper, one aggregate per run).
- ``single``: durable single appends (one transaction and commit each) against eventsourcing
  storing 1 event per ``insert_events``; ``--single`` events.
- ``concurrent``: 8 processes appending single events to one govledger PostgreSQL ledger at
  once (``--single`` events in all): aggregate events/s, and a check that the log holds seq
  exactly 1..N with no gap and verifies.
- ``verify``: ``verify_ledger`` of a log in PostgreSQL against the same log in SQLite (built
  once with ``build_ledger``, copied with ``copy_log`` as ``govledger copy`` does).
- ``read``: reading every event (``iter_rows`` of the whole log), PostgreSQL against SQLite.
- ``replay-read``: the read path of a replay: ``replay_events`` in the driver's ranges.
- ``replay``: a full replay (every stored read model rebuilt), PostgreSQL against SQLite;
  ``skipped`` (with the store's reason) while the PostgreSQL store keeps no read models.

CPU per event is reported for both sides: the client's (the benchmark process and its signing
workers) and the server's (the PostgreSQL backends serving the run's database, read from
/proc when the server runs on this machine). Timings are printed,
never asserted; this is not part of the test run. Exit 3 with one line when the server cannot
be reached or a dependency (psycopg, eventsourcing's PostgreSQL module) is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.bench import (  # noqa: E402
    AGENTS,
    SEED,
    _es_event_class,
    _es_mapper,
    _median,
    batches,
    default_tmp,
    log,
    read_lines,
    w_setup_input,
)

SCENARIOS = ("batch100", "single", "concurrent", "verify", "read", "replay-read", "replay")
BASELINE = {
    "batch100": "eventsourcing-pg",
    "single": "eventsourcing-pg",
    "verify": "govledger-sqlite",
    "read": "govledger-sqlite",
    "replay-read": "govledger-sqlite",
    "replay": "govledger-sqlite",
}
TARGET = {
    "batch100": 1.0,
    "single": 1.0,
    "verify": 0.8,
    "read": 0.8,
    "replay-read": 0.8,
    "replay": 0.8,
}
FIXTURE_SCENARIOS = ("verify", "read", "replay-read", "replay")
WRITERS = 8
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
SETTINGS = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "wal_level")


def with_db(url: str, dbname: str) -> str:
    """``url`` naming database ``dbname`` instead."""
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + dbname, p.query, p.fragment))


# --- workers: each runs in its own process and returns {"events": n, ...} ---------------------


def server_cpu(url: str) -> float | None:
    """CPU seconds (user + system, from /proc) used so far by the server processes serving
    ``url``'s database (every other connection to it: the bench's databases are its own), or
    None when the server's processes cannot be read (another machine)."""
    import os

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pids = [
            r[0]
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return None
    return total


def _signers(keys: str) -> tuple[Any, Any]:
    from ledger.crypto.keyfiles import KeyRing

    ring = KeyRing(keys)
    return ring.load("root"), ring.load("recorder")


def _new_pg_ledger(url: str, keys: str) -> Any:
    """A govledger ledger at ``url`` with the recorder key registered."""
    from ledger.store import create_store
    from ledger.store.sqlite import Draft, root_key_payload

    root, rec = _signers(keys)
    ledger = create_store(url, origin="bench.example/log", root=root)
    ledger.append(Draft("key.registered", root_key_payload(rec, "recorder")), signer=root)
    return ledger


def gl_pg_append(a: dict[str, Any], size: int) -> dict[str, Any]:
    from ledger.store.sqlite import Draft

    _, rec = _signers(a["keys"])
    ledger = _new_pg_ledger(a["url"], a["keys"])
    n = 0
    for batch in batches(Path(a["jsonl"]), a["n"], size):
        drafts = [Draft(t, p, agent=ag, run=r, actor=ac) for t, p, ag, r, ac in batch]
        if size == 1:
            ledger.append(drafts[0], signer=rec)
        else:
            ledger.append_many(drafts, signer=rec)
        n += len(drafts)
    cpu = server_cpu(a["url"])
    ledger.close()
    return {"events": n, "server_cpu_s": cpu}


def es_pg_append(a: dict[str, Any], size: int) -> dict[str, Any]:
    """eventsourcing's PostgreSQL recorder: the same events, unsigned, one aggregate per run,
    mapped to stored events by its own mapper, ``size`` per ``insert_events``."""
    from datetime import UTC, datetime

    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    p = urlsplit(a["url"])
    datastore = PostgresDatastore(
        dbname=p.path.lstrip("/"),
        host=p.hostname or "127.0.0.1",
        port=p.port or 5432,
        user=p.username or "postgres",
        password=p.password or "",
    )
    recorder = PostgresApplicationRecorder(datastore)
    recorder.create_table()
    mapper = _es_mapper()
    event_class = _es_event_class()
    now = datetime.now(UTC)
    versions: dict[uuid.UUID, int] = {}
    done = 0
    for batch in batches(Path(a["jsonl"]), a["n"], size):
        stored = []
        for t, pl, ag, r, _ac in batch:
            oid = uuid.uuid5(uuid.NAMESPACE_URL, r or f"agent:{ag}")
            v = versions.get(oid, 0) + 1
            versions[oid] = v
            event = event_class(
                originator_id=oid,
                originator_version=v,
                timestamp=now,
                type=t,
                agent=ag,
                run=r,
                payload=pl,
            )
            stored.append(mapper.to_stored_event(event))
        recorder.insert_events(stored)
        done += len(batch)
    cpu = server_cpu(a["url"])
    datastore.close()
    return {"events": done, "server_cpu_s": cpu}


def w_setup_concurrent(a: dict[str, Any]) -> dict[str, Any]:
    _new_pg_ledger(a["url"], a["keys"]).close()
    return {"events": 2}


def w_writer(a: dict[str, Any]) -> dict[str, Any]:
    """One of the concurrent writers: its slice of the input, one event per transaction,
    started when the driver creates ``go``. Returns wall-clock start and end."""
    from ledger.store import open_store
    from ledger.store.sqlite import Draft

    _, rec = _signers(a["keys"])
    lines = list(
        itertools.islice(read_lines(Path(a["jsonl"]), a["skip"] + a["n"]), a["skip"], None)
    )
    ledger = open_store(a["url"])
    Path(a["ready"]).touch()
    while not Path(a["go"]).exists():
        time.sleep(0.001)
    start = time.time()
    for t, p, ag, r, ac in lines:
        ledger.append(Draft(t, p, agent=ag, run=r, actor=ac), signer=rec)
    end = time.time()
    ledger.close()
    return {"events": len(lines), "start": start, "end": end}


def w_check_log(a: dict[str, Any]) -> dict[str, Any]:
    """Whether the concurrent log holds seq exactly 1..N and verifies."""
    from ledger.store import open_store
    from ledger.verify.verifier import verify_ledger

    with open_store(a["url"]) as ledger:
        lo, hi, count = ledger.conn.execute(
            "SELECT min(seq), max(seq), count(*) FROM events"
        ).fetchone()
        report = verify_ledger(ledger)
    gapless = lo == 1 and hi == count == a["expect"]
    return {
        "events": int(count),
        "gapless": bool(gapless),
        "verifies": bool(report.ok),
        "min": lo,
        "max": hi,
    }


def w_setup_ledger(a: dict[str, Any]) -> dict[str, Any]:
    """The verify/replay fixture: ``build_ledger`` into SQLite, copied into PostgreSQL."""
    from ledger.exchange.copy import copy_log, verified_size
    from ledger.store import open_copy_target, open_store
    from scripts.generate import build_ledger

    ledger = build_ledger(a["db"], a["keys"], a["n"], AGENTS, SEED, synchronous="NORMAL")
    ledger.close()
    with open_store(a["db"]) as source:
        size = verified_size(source)
        with open_copy_target(a["url"]) as target:
            copy_log(source, target, size=size)
    return {"events": size}


def _with_server_cpu(a: dict[str, Any], out: dict[str, Any], before: float | None) -> None:
    if a["db"].startswith("postgres"):
        after = server_cpu(a["db"])
        if before is not None and after is not None:
            out["server_cpu_s"] = after - before


def gl_verify(a: dict[str, Any]) -> dict[str, Any]:
    from ledger.store import open_store
    from ledger.verify.verifier import verify_ledger

    with open_store(a["db"]) as ledger:
        before = server_cpu(a["db"]) if a["db"].startswith("postgres") else None
        report = verify_ledger(ledger)
        out: dict[str, Any] = {"events": report.events}
        _with_server_cpu(a, out, before)
    if not report.ok:
        raise SystemExit(f"verify failed: {report.problems[:3]}")
    return out


def gl_read(a: dict[str, Any]) -> dict[str, Any]:
    """Reading every event: ``iter_rows`` of the whole log, in seq order."""
    from ledger.store import open_store

    with open_store(a["db"]) as ledger:
        before = server_cpu(a["db"]) if a["db"].startswith("postgres") else None
        out: dict[str, Any] = {"events": sum(1 for _ in ledger.iter_rows())}
        _with_server_cpu(a, out, before)
    return out


def gl_replay_read(a: dict[str, Any]) -> dict[str, Any]:
    """The read path of a replay: ``replay_events`` in the driver's ranges (``BATCH``)."""
    from ledger.store import open_store
    from projections.driver import BATCH

    with open_store(a["db"]) as ledger:
        before = server_cpu(a["db"]) if a["db"].startswith("postgres") else None
        size, n = ledger.size, 0
        for low in range(0, size, BATCH):
            n += sum(1 for _ in ledger.replay_events(from_seq=low + 1, to_seq=low + BATCH))
        out: dict[str, Any] = {"events": n}
        _with_server_cpu(a, out, before)
    return out


def gl_replay(a: dict[str, Any]) -> dict[str, Any]:
    """A full replay: every stored read model rebuilt (``catch_up`` with ``rebuild``), as
    ``govledger replay`` does. A store that keeps no read models answers ``skipped``."""
    from ledger.errors import StoreError
    from ledger.store import open_store
    from projections.driver import catch_up

    with open_store(a["db"]) as ledger:
        try:
            stored = ledger.read_models()
        except StoreError as e:
            return {"events": 0, "skipped": f"no read models on this store ({type(e).__name__})"}
        before = server_cpu(a["db"]) if a["db"].startswith("postgres") else None
        progress = catch_up(ledger, stored, rebuild=True)
        out: dict[str, Any] = {"events": min(p.to_seq for p in progress)}
        _with_server_cpu(a, out, before)
    return out


WORKERS: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("setup", "input"): w_setup_input,
    ("setup", "ledger"): w_setup_ledger,
    ("setup", "concurrent"): w_setup_concurrent,
    ("check", "concurrent"): w_check_log,
    ("concurrent", "writer"): w_writer,
    ("batch100", "govledger-pg"): lambda a: gl_pg_append(a, 100),
    ("batch100", "eventsourcing-pg"): lambda a: es_pg_append(a, 100),
    ("single", "govledger-pg"): lambda a: gl_pg_append(a, 1),
    ("single", "eventsourcing-pg"): lambda a: es_pg_append(a, 1),
    ("verify", "govledger-pg"): gl_verify,
    ("verify", "govledger-sqlite"): gl_verify,
    ("read", "govledger-pg"): gl_read,
    ("read", "govledger-sqlite"): gl_read,
    ("replay-read", "govledger-pg"): gl_replay_read,
    ("replay-read", "govledger-sqlite"): gl_replay_read,
    ("replay", "govledger-pg"): gl_replay,
    ("replay", "govledger-sqlite"): gl_replay,
}


def run_worker(job: dict[str, Any]) -> dict[str, Any]:
    fn = WORKERS[(job["scenario"], job["impl"])]
    # Import before the clock starts: timings are of the work, not of module loading.
    for module in ("ledger.store.postgres", "ledger.verify.verifier", "eventsourcing.postgres"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    out = fn(job)
    seconds = time.perf_counter() - start
    with contextlib.suppress(ImportError):
        from ledger.crypto import pool as workers

        workers.shutdown()
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime - before.ru_utime - before.ru_stime
    out.update(
        seconds=seconds,
        peak_rss_mb=me.ru_maxrss / 1024,
        cpu_s=cpu + kids.ru_utime + kids.ru_stime,
    )
    return out


# --- driver -----------------------------------------------------------------------------------


def _command(job: dict[str, Any]) -> list[str]:
    return [sys.executable, __file__, "--worker", json.dumps(job)]


def _result(job: dict[str, Any], rc: int, stdout: str, stderr: str) -> dict[str, Any]:
    if stderr:
        print(stderr, file=sys.stderr, end="")
    if rc != 0:
        tail = (stderr.strip().splitlines() or ["?"])[-1]
        return {
            "scenario": job["scenario"],
            "impl": job["impl"],
            "events": 0,
            "seconds": 0.0,
            "events_per_s": 0.0,
            "peak_rss_mb": 0.0,
            "error": tail,
        }
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result.update(scenario=job["scenario"], impl=job["impl"])
    result["events_per_s"] = result["events"] / result["seconds"] if result["seconds"] else 0.0
    return result


def spawn(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(_command(job), capture_output=True, text=True, cwd=ROOT, check=False)
    return _result(job, proc.returncode, proc.stdout, proc.stderr)


class Server:
    """The PostgreSQL server: its settings, and the databases this run creates and drops."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.url = url
        self.conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
        self.prefix = f"gl_bench_{uuid.uuid4().hex[:8]}"
        self.made: list[str] = []

    def settings(self) -> dict[str, str]:
        out = {}
        for name in SETTINGS:
            row = self.conn.execute(f"SHOW {name}").fetchone()
            out[name] = "?" if row is None else str(row[0])
        return out

    def new_db(self, name: str) -> str:
        dbname = f"{self.prefix}_{name}".replace("-", "_")
        self.conn.execute(f'CREATE DATABASE "{dbname}"')
        self.made.append(dbname)
        return with_db(self.url, dbname)

    def drop(self, url: str) -> None:
        dbname = urlsplit(url).path.lstrip("/")
        self.conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if dbname in self.made:
            self.made.remove(dbname)

    def close(self) -> None:
        for dbname in list(self.made):
            with contextlib.suppress(Exception):
                self.conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        self.conn.close()


def connect(url: str) -> Server:
    """The server, or ``SystemExit`` with one line naming what is missing or unreachable."""
    for module, hint in (
        ("psycopg", "pip install 'govledger[postgres]'"),
        ("eventsourcing.postgres", "pip install 'eventsourcing[postgres]' (psycopg-pool)"),
    ):
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise SystemExit(f"bench_postgres: {module} cannot be imported ({e}): {hint}") from e
    try:
        return Server(url)
    except Exception as e:  # psycopg.OperationalError and friends: one line, exit 3
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        from ledger.store.postgres import redact

        raise SystemExit(f"bench_postgres: cannot connect to {redact(url)}: {first}") from e


def run_concurrent(server: Server, base: dict[str, Any], n: int, tmp: Path) -> dict[str, Any]:
    url = server.new_db("concurrent")
    setup = spawn({**base, "scenario": "setup", "impl": "concurrent", "url": url})
    if "error" in setup:
        server.drop(url)
        return {**setup, "scenario": "concurrent", "impl": "govledger-pg"}
    go = tmp / "go"
    go.unlink(missing_ok=True)
    share = [n // WRITERS + (1 if i < n % WRITERS else 0) for i in range(WRITERS)]
    jobs, procs = [], []
    for i, k in enumerate(share):
        job = {
            **base,
            "scenario": "concurrent",
            "impl": "writer",
            "url": url,
            "n": k,
            "skip": sum(share[:i]),
            "ready": str(tmp / f"ready{i}"),
            "go": str(go),
        }
        Path(job["ready"]).unlink(missing_ok=True)
        jobs.append(job)
        procs.append(
            subprocess.Popen(
                _command(job), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
            )
        )
    while not all(Path(j["ready"]).exists() for j in jobs) and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()
    outs = [_result(j, p.wait(), *p.communicate()) for j, p in zip(jobs, procs, strict=True)]
    bad = [o for o in outs if "error" in o]
    check = spawn({**base, "scenario": "check", "impl": "concurrent", "url": url, "expect": n + 2})
    server.drop(url)
    if bad or "error" in check:
        return {**(bad or [check])[0], "scenario": "concurrent", "impl": "govledger-pg"}
    seconds = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    events = sum(o["events"] for o in outs)
    return {
        "scenario": "concurrent",
        "impl": "govledger-pg",
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "cpu_s": sum(o["cpu_s"] for o in outs),
        "peak_rss_mb": max(o["peak_rss_mb"] for o in outs),
        "gapless": check["gapless"],
        "verifies": check["verifies"],
        "max_seq": check["max"],
    }


def run_all(
    args: argparse.Namespace, server: Server, scenarios: list[str], tmp: Path, quiet: bool
) -> list[dict[str, Any]]:
    from ledger.crypto.keyfiles import KeyRing

    ring = KeyRing(tmp / "keys")
    ring.create("root")
    ring.create("recorder")
    jsonl = tmp / "input.jsonl"
    base = {"keys": str(tmp / "keys"), "jsonl": str(jsonl)}
    need = max(
        [
            args.events if s == "batch100" else args.single
            for s in scenarios
            if s in ("batch100", "single", "concurrent")
        ],
        default=0,
    )
    if need:
        log(f"setup: generating {need:,} recorder-signed drafts", quiet)
        spawn({**base, "scenario": "setup", "impl": "input", "need": need})
    results: list[dict[str, Any]] = []
    fixture_db, fixture_url = str(tmp / "fixture.db"), ""
    if any(s in FIXTURE_SCENARIOS for s in scenarios):
        fixture_url = server.new_db("fixture")
        log(f"setup: build_ledger {args.events:,} events (SQLite), copy to PostgreSQL", quiet)
        r = spawn(
            {
                **base,
                "scenario": "setup",
                "impl": "ledger",
                "db": fixture_db,
                "url": fixture_url,
                "n": args.events,
            }
        )
        if "error" in r:
            raise SystemExit(f"bench_postgres: building the verify/replay fixture: {r['error']}")
    for round_, s in ((i, s) for i in range(args.rounds) for s in scenarios):
        which = f" round {round_ + 1}/{args.rounds}" if args.rounds > 1 else ""
        if s == "concurrent":
            log(f"concurrent: {WRITERS} writers, {args.single:,} events{which}", quiet)
            r = run_concurrent(server, base, args.single, tmp)
            r["round"] = round_
            log(f"  {r['events']:,} events: {r['events_per_s']:,.0f}/s", quiet)
            results.append(r)
            continue
        n = args.events if s == "batch100" else args.single if s == "single" else 0
        impls = ("govledger-pg", BASELINE[s])
        for impl in impls if round_ % 2 == 0 else impls[::-1]:
            job: dict[str, Any] = {**base, "scenario": s, "impl": impl, "n": n}
            url = ""
            if s in FIXTURE_SCENARIOS:
                job["db"] = fixture_url if impl == "govledger-pg" else fixture_db
            else:
                url = job["url"] = server.new_db(f"{s}_{impl}_{round_}")
            log(f"{s}: {impl}{which}", quiet)
            r = spawn(job)
            if url:
                server.drop(url)
            r["round"] = round_
            log(
                f"  {r['events']:,} events in {r['seconds']:.2f} s: {r['events_per_s']:,.0f}/s",
                quiet,
            )
            results.append(r)
    return results


def table_rows(results: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for s in dict.fromkeys(r["scenario"] for r in results):
        mine = [r for r in results if r["scenario"] == s and r["impl"] == "govledger-pg"]
        theirs = [r for r in results if r["scenario"] == s and r["impl"] != "govledger-pg"]
        failed = [r for r in mine + theirs if "error" in r]
        if failed:
            rows.append((s, "FAILED", failed[0]["impl"], failed[0]["error"][:70], *[""] * 5))
            continue
        skipped = [r for r in mine + theirs if "skipped" in r]
        if skipped:
            rows.append((s, "skipped", skipped[0]["impl"], skipped[0]["skipped"][:70], *[""] * 5))
            continue
        evs = f"{_median([r['events_per_s'] for r in mine]):,.0f}"
        client = _us(mine, "cpu_s")
        server = _us(mine, "server_cpu_s")
        if s == "concurrent":
            ok = all(r["gapless"] and r["verifies"] for r in mine)
            rows.append(
                (
                    s,
                    evs,
                    f"{WRITERS} writers",
                    "",
                    "",
                    client,
                    server,
                    "seq 1..N, verifies",
                    "met" if ok else "NOT MET",
                )
            )
            continue
        by_round = {b.get("round", 0): b for b in theirs}
        ratios = []
        for r in mine:
            b = by_round.get(r.get("round", 0))
            if b is not None and b["events_per_s"]:
                ratios.append(r["events_per_s"] / b["events_per_s"])
        ratio = f"{_median(ratios):.2f}×"
        if len(ratios) > 1:
            ratio += f" ({min(ratios):.2f}–{max(ratios):.2f})"
        target = TARGET[s]
        rows.append(
            (
                s,
                evs,
                theirs[0]["impl"],
                f"{_median([b['events_per_s'] for b in theirs]):,.0f}",
                ratio,
                f"{client} / {_us(theirs, 'cpu_s')}",
                f"{server} / {_us(theirs, 'server_cpu_s')}",
                f"≥ {target:.1f}×",
                "met" if _median(ratios) >= target else "NOT MET",
            )
        )
    return rows


def _us(results: list[dict[str, Any]], key: str) -> str:
    """The median of ``key`` (CPU seconds) per event, in microseconds ("-" when not known)."""
    values = [r[key] / r["events"] for r in results if r.get(key) is not None and r["events"]]
    return f"{_median(values) * 1e6:,.0f}" if values else "-"


def print_table(results: list[dict[str, Any]], settings: dict[str, str]) -> None:
    cols = (
        "scenario",
        "events/s",
        "baseline",
        "baseline ev/s",
        "ratio",
        "client µs/ev (gl / base)",
        "server µs/ev (gl / base)",
        "target",
        "",
    )
    rows = table_rows(results)
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]

    def fmt(values: tuple[str, ...]) -> str:
        return "  ".join(
            v.ljust(w) if i in (0, 2, 8) else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    print(fmt(cols))
    print("-" * len(fmt(cols)))
    for row in rows:
        print(fmt(row))
    rounds = len({r.get("round", 0) for r in results}) or 1
    print(
        f"\n{rounds} round(s): events/s and CPU are medians; ratio = median of the per-round "
        "ratios govledger-pg ÷ baseline (range in brackets); client µs/ev: user + system CPU of "
        "the benchmark process and its signing workers per event; server µs/ev: CPU of the "
        "PostgreSQL backends serving the run's database per event (from /proc; WAL writer and "
        "checkpointer not counted; '-' for SQLite or a remote server)."
    )
    print("server: " + ", ".join(f"{k}={v}" for k, v in settings.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog="Exit 3 with one line when the server cannot be reached.",
    )
    ap.add_argument(
        "--pg", default=DEFAULT_PG, help=f"server URL, trust or password ({DEFAULT_PG})"
    )
    ap.add_argument(
        "--events",
        type=int,
        default=20_000,
        help="events for batch100 and the verify/replay log (20000)",
    )
    ap.add_argument(
        "--single", type=int, default=1_000, help="events for single and concurrent appends (1000)"
    )
    ap.add_argument(
        "--rounds", type=int, default=1, help="run every scenario N times, sides alternating (1)"
    )
    ap.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)}",
    )
    ap.add_argument("--tmp", type=Path, default=None, help="directory for the SQLite files")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        ap.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    if args.rounds < 1 or args.events < 1 or args.single < WRITERS:
        ap.error(f"--rounds and --events must be at least 1, --single at least {WRITERS}")
    try:
        server = connect(args.pg)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 3
    settings = server.settings()
    tmp = Path(tempfile.mkdtemp(prefix="govledger-bench-pg-", dir=args.tmp or default_tmp()))
    try:
        results = run_all(args, server, scenarios, tmp, args.json)
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "events": args.events,
                    "single": args.single,
                    "rounds": args.rounds,
                    "server": settings,
                    "results": results,
                },
                indent=2,
            )
        )
    else:
        print_table(results, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
