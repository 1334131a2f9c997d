"""Benchmark: append, verify and replay throughput and peak memory, against baselines.

    python scripts/bench.py                         # 100k events, single appends at 5k
    python scripts/bench.py --events 1000000 --scenarios batch1000,verify
    python scripts/bench.py --json > bench.json
    python scripts/bench.py --rounds 3              # each scenario 3 times, sides alternating

Every measurement runs in a fresh Python process, so the peak RSS (``ru_maxrss``) is that of
one scenario and one implementation. Baselines are measured in the same run, on the same input
(the generator's recorder-signed events, ``scripts/generate.py``), on the same disk:

- ``bare``: a plain loop doing the same work with no framework: canonical JSON
  (``json.dumps(sort_keys=True)``), SHA-256, Ed25519 sign (libsodium via PyNaCl, as govledger
  uses, else OpenSSL), ``sqlite3`` insert into a table
  with the same columns and indexes, WAL, ``synchronous=FULL``; for verify the same read,
  re-canonicalization, SHA-256, chain check and Ed25519 verify on one core.
- ``eventsourcing``: the ``eventsourcing`` library's ``SQLiteApplicationRecorder`` storing the
  same events unsigned (one aggregate per run) as domain events mapped by its own mapper, and
  reading them back through its notification log (``NotificationLogReader``) in sections of
  1,000 for replay: the leanest way to drive the library.
- ``eventsourcing-app``: the same library used as an application uses it: an ``Application``
  whose aggregates (one per run) record each event and ``save()`` them, N events per save;
  for replay, the notification log read with the library's default section size (10, what its
  ``Follower`` pulls). This is the configuration whose figures the issues quote (~19k/s at
  100 per save, ~2.9k/s at 1 per save, ~46k/s read).

Wall-clock speed on a shared virtual machine drifts by tens of percent within minutes, so
``--rounds N`` runs every scenario N times, govledger and its baselines alternating who goes
first, and reports medians and the median of the per-round ratios with their range.

Scenarios: ``single`` (durable single appends: one transaction and one fsync per event, so it
is fsync-bound and uses ``--single`` events), ``batch100``, ``batch1000`` (``append_many``),
``verify`` (``ledger.verify.verifier.verify_ledger``), ``replay`` (``projections.driver.catch_up`` with
``rebuild=True``: every read model rebuilt from the log). The verify and replay fixture is built
with ``build_ledger`` (mixed governor and recorder events, ``synchronous=NORMAL``); its build
time is reported too. Timings are printed, never asserted; this is not part of the test run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import hashlib
import importlib
import io
import json
import os
import pstats
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCENARIOS = ("single", "batch100", "batch1000", "verify", "replay")
BASELINES = {
    "single": ("bare", "eventsourcing", "eventsourcing-app"),
    "batch100": ("bare", "eventsourcing", "eventsourcing-app"),
    "batch1000": ("bare", "eventsourcing", "eventsourcing-app"),
    "verify": ("bare",),
    "replay": ("eventsourcing", "eventsourcing-app"),
}
ES_TUNED_SECTION = 1000
"""Notification-log section size of the ``eventsourcing`` replay baseline: 100 times the
library's default, so it reads in large pages (the lean, tuned way)."""
AGENTS = 20
SEED = 1
PREFIX = b"govledger/event/v1\n"

# --- input ------------------------------------------------------------------------------------

Line = tuple[str, dict[str, Any], str | None, str | None, str | None]
"""(type, payload, agent, run, actor) of one recorder-signed draft."""


def read_lines(path: Path, limit: int) -> Iterator[Line]:
    """Stream the first ``limit`` drafts of an import file (parsing is cheap and equal for all)."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= limit:
                return
            o = json.loads(line)
            yield o["type"], o["payload"], o["agent"], o["run"], o["actor"]


def batches(path: Path, n: int, size: int) -> Iterator[list[Line]]:
    batch: list[Line] = []
    for item in read_lines(path, n):
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ed25519() -> tuple[str, Callable[[], tuple[bytes, Any]], Any, Any]:
    """(library, keygen() -> (public, secret), sign(secret, msg), verify(public, sig, msg)).

    libsodium (PyNaCl) when installed, as govledger itself uses, so the bare loop measures the
    framework and not a slower Ed25519; else OpenSSL through ``cryptography``.
    """
    try:
        from nacl import bindings as nb

        def sodium_sign(sk: bytes, m: bytes) -> bytes:
            return nb.crypto_sign(m, sk)[:64]

        def sodium_verify(pk: bytes, sig: bytes, m: bytes) -> None:
            nb.crypto_sign_open(sig + m, pk)

        return "libsodium", nb.crypto_sign_keypair, sodium_sign, sodium_verify
    except ImportError:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519 as ed

        def gen() -> tuple[bytes, Any]:
            k = ed.Ed25519PrivateKey.generate()
            raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
            return k.public_key().public_bytes(*raw), k

        def ossl_verify(pk: bytes, sig: bytes, m: bytes) -> None:
            ed.Ed25519PublicKey.from_public_bytes(pk).verify(sig, m)

        return "openssl", gen, lambda k, m: k.sign(m), ossl_verify


# --- workers: each runs in its own process and returns {"events": n, ...} ---------------------


def w_setup_input(a: dict[str, Any]) -> dict[str, Any]:
    """Write the recorder-signed drafts of the workload as import lines."""
    from scripts.generate import RECORDER, generate_drafts, import_line

    n = 0
    with open(a["jsonl"], "w", encoding="utf-8") as f:
        # Recorder drafts are ~89% of the stream: generate enough to get ``need`` of them.
        for role, d in generate_drafts(int(a["need"] * 1.2) + 1000, AGENTS, SEED):
            if role == RECORDER:
                f.write(import_line(d) + "\n")
                n += 1
                if n >= a["need"]:
                    break
    return {"events": n}


def w_setup_ledger(a: dict[str, Any]) -> dict[str, Any]:
    """The verify/replay fixture: generate and build a mixed-role ledger (NORMAL)."""
    from scripts.generate import build_ledger

    ledger = build_ledger(a["db"], a["keys"], a["n"], AGENTS, SEED, synchronous="NORMAL")
    size = ledger.size
    ledger.close()
    return {"events": size}


def w_setup_es(a: dict[str, Any]) -> dict[str, Any]:
    return es_append(a["jsonl"], a["es_db"], a["n"], 1000)


def gl_append(a: dict[str, Any], size: int) -> dict[str, Any]:
    from ledger.crypto.keyfiles import KeyRing
    from ledger.store.sqlite import Draft, Ledger, root_key_payload

    ring = KeyRing(a["keys"])
    root, rec = ring.load("root"), ring.load("recorder")
    ledger = Ledger.create(a["db"], origin="bench.example/log", root=root, synchronous="FULL")
    ledger.append(Draft("key.registered", root_key_payload(rec, "recorder")), signer=root)
    n = 0
    for batch in batches(a["jsonl"], a["n"], size):
        drafts = [Draft(t, p, agent=ag, run=r, actor=ac) for t, p, ag, r, ac in batch]
        if size == 1:
            ledger.append(drafts[0], signer=rec)
        else:
            ledger.append_many(drafts, signer=rec)
        n += len(drafts)
    ledger.close()
    return {"events": n}


BARE_DDL = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL,
  type TEXT NOT NULL, agent TEXT, run TEXT, actor TEXT, payload TEXT NOT NULL,
  prev TEXT NOT NULL, key TEXT NOT NULL, hash TEXT NOT NULL, sig TEXT NOT NULL);
CREATE INDEX events_run ON events (run, seq) WHERE run IS NOT NULL;
CREATE INDEX events_agent ON events (agent, seq) WHERE agent IS NOT NULL;
CREATE INDEX events_type ON events (type, seq);
CREATE INDEX events_ts ON events (ts);
"""


def bare_digest(dumps: Callable[[Any], str], seq: int, eid: str, ts: str, t: str,
                ag: str | None, r: str | None, ac: str | None, p: Any, prev: str,
                kid: str) -> bytes:  # fmt: skip
    """The bare loops' event hash: SHA-256 of 0x00 and the sorted-key JSON of the body."""
    body = {"v": 1, "seq": seq, "id": eid, "ts": ts, "type": t, "agent": ag, "run": r,
            "actor": ac, "payload": p, "prev": prev, "key": kid}  # fmt: skip
    return hashlib.sha256(b"\x00" + dumps(body).encode()).digest()


def bare_append(a: dict[str, Any], size: int) -> dict[str, Any]:
    """Same work as an append, no framework: canonicalize, hash, sign, insert (FULL)."""
    lib, keygen, sign, _ = ed25519()
    pub, key = keygen()
    kid = hashlib.sha256(pub).digest()[:16].hex()
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    conn = sqlite3.connect(a["db"], isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(BARE_DDL)
    seq, prev, n = 0, "0" * 64, 0
    for batch in batches(a["jsonl"], a["n"], size):
        conn.execute("BEGIN IMMEDIATE")
        ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows = []
        for t, p, ag, r, ac in batch:
            seq += 1
            eid = str(uuid.uuid4())
            h = bare_digest(dumps, seq, eid, ts, t, ag, r, ac, p, prev, kid)
            sig = base64.b64encode(sign(key, PREFIX + h)).decode()
            rows.append((seq, eid, ts, t, ag, r, ac, dumps(p), prev, kid, h.hex(), sig))
            prev = h.hex()
        conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        n += len(batch)
    conn.close()
    return {"events": n, "ed25519": lib}


def es_recorder(path: str) -> Any:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    datastore = SQLiteDatastore(path)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    return recorder


def _es_event_class() -> Any:
    """A domain event class for the baseline: what an eventsourcing application stores."""
    from dataclasses import dataclass

    from eventsourcing.domain import DomainEvent

    global Recorded  # module level, so its topic resolves when the replay worker decodes it
    if "Recorded" not in globals():

        @dataclass(frozen=True)
        class Recorded(DomainEvent):  # type: ignore[no-redef]
            type: str
            agent: str | None
            run: str | None
            payload: dict[str, Any]

        Recorded.__qualname__ = "Recorded"
        globals()["Recorded"] = Recorded
    return globals()["Recorded"]


def _es_mapper() -> Any:
    """eventsourcing's mapper with the transcodings an Application registers by default."""
    from eventsourcing.persistence import (
        DatetimeAsISO,
        DecimalAsStr,
        JSONTranscoder,
        Mapper,
        UUIDAsHex,
    )

    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def es_append(jsonl: str, path: str, n: int, size: int) -> dict[str, Any]:
    """eventsourcing's SQLite recorder: the same events, unsigned, one aggregate per run,
    each a domain event object turned into a stored event by eventsourcing's own mapper (JSON
    transcoder), as an eventsourcing application saves them."""
    from datetime import UTC, datetime

    recorder = es_recorder(path)
    mapper = _es_mapper()
    event_class = _es_event_class()
    now = datetime.now(UTC)
    with recorder.datastore.transaction(commit=False) as c:
        c.execute("PRAGMA synchronous")
        sync = c.fetchone()[0]
    versions: dict[uuid.UUID, int] = {}
    done = 0
    for batch in batches(Path(jsonl), n, size):
        stored = []
        for t, p, ag, r, _ac in batch:
            oid = uuid.uuid5(uuid.NAMESPACE_URL, r or f"agent:{ag}")
            v = versions.get(oid, 0) + 1
            versions[oid] = v
            stored.append(
                mapper.to_stored_event(
                    event_class(
                        originator_id=oid,
                        originator_version=v,
                        timestamp=now,
                        type=t,
                        agent=ag,
                        run=r,
                        payload=p,
                    )
                )
            )
        recorder.insert_events(stored)
        done += len(batch)
    recorder.datastore.close()
    return {"events": done, "synchronous": sync}


def gl_verify(a: dict[str, Any]) -> dict[str, Any]:
    from ledger.store.sqlite import Ledger
    from ledger.verify.verifier import verify_ledger

    with Ledger.open(a["db"]) as ledger:
        report = verify_ledger(ledger)
    if not report.ok:
        raise SystemExit(f"verify failed: {report.problems[:3]}")
    return {"events": report.events}


def bare_verify(a: dict[str, Any]) -> dict[str, Any]:
    """Read, re-canonicalize, hash, check the chain, verify Ed25519: one core, no framework."""
    lib, _, _, verify = ed25519()
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    conn = sqlite3.connect(a["db"])
    keys: dict[str, Any] = {}
    prev, n = "0" * 64, 0
    cols = "seq, id, ts, type, agent, run, actor, payload, prev, key, hash, sig"
    for row in conn.execute(f"SELECT {cols} FROM events ORDER BY seq"):
        seq, eid, ts, t, ag, r, ac, payload, prv, kid, h, sig = row
        p = json.loads(payload)
        if t in ("ledger.created", "key.registered"):
            k = p["key"] if t == "ledger.created" else p
            keys[k["key_id"]] = base64.b64decode(k["public_key"])
        digest = bare_digest(dumps, seq, eid, ts, t, ag, r, ac, p, prv, kid)
        if digest.hex() != h or prv != prev:
            raise SystemExit(f"bare verify: seq {seq} does not chain")
        verify(keys[kid], base64.b64decode(sig), PREFIX + digest)
        prev = h
        n += 1
    conn.close()
    return {"events": n, "ed25519": lib}


def gl_replay(a: dict[str, Any]) -> dict[str, Any]:
    from ledger.store.sqlite import Ledger
    from projections.driver import catch_up

    with Ledger.open(a["db"]) as ledger:
        progress = catch_up(ledger, ledger.read_models(), rebuild=True)
        size = ledger.size
    return {"events": size, "projections": [p.name for p in progress]}


def _es_app_classes() -> tuple[Any, Any]:
    """An eventsourcing application and its aggregate (one per run), at module level so
    their topics resolve."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    if "RunAggregate" not in globals():

        class RunAggregate(Aggregate):
            @event("Started")
            def __init__(self, name: str) -> None:
                self.name = name

            @event("Recorded")
            def record(
                self, type: str, agent: str | None, run: str | None, payload: dict[str, Any]
            ) -> None:
                pass

        class LedgerApp(Application):
            pass

        RunAggregate.__qualname__ = "RunAggregate"
        LedgerApp.__qualname__ = "LedgerApp"
        globals().update(RunAggregate=RunAggregate, LedgerApp=LedgerApp)
    return globals()["LedgerApp"], globals()["RunAggregate"]


def es_app_append(jsonl: str, path: str, n: int, size: int) -> dict[str, Any]:
    """eventsourcing as an application uses it: each event recorded by its run's aggregate,
    ``size`` events per ``Application.save`` (SQLite, the library's default settings)."""
    os.environ.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=path)
    app_class, aggregate_class = _es_app_classes()
    app = app_class()
    aggregates: dict[str, Any] = {}
    done = 0
    for batch in batches(Path(jsonl), n, size):
        touched: dict[str, Any] = {}
        for t, p, ag, r, _ac in batch:
            name = r or f"agent:{ag}"
            aggregate = aggregates.get(name)
            if aggregate is None:
                aggregate = aggregates[name] = aggregate_class(name)
            aggregate.record(t, ag, r, p)
            touched[name] = aggregate
        app.save(*touched.values())
        done += len(batch)
    app.close()
    return {"events": done}


def es_replay(a: dict[str, Any]) -> dict[str, Any]:
    """Read every event back through eventsourcing's notification log and deserialize it into
    its domain event object with eventsourcing's mapper: what an eventsourcing projection does
    before it can look at an event. ``section_size``: notifications per read (the library's
    default is 10)."""
    from eventsourcing.application import LocalNotificationLog
    from eventsourcing.system import NotificationLogReader

    _es_event_class()
    mapper = _es_mapper()
    recorder = es_recorder(a["es_db"])
    section = int(a.get("section_size", ES_TUNED_SECTION))
    reader = NotificationLogReader(
        LocalNotificationLog(recorder, section_size=section), section_size=section
    )
    n = 0
    for notification in reader.read(start=1):
        mapper.to_domain_event(notification)
        n += 1
    recorder.datastore.close()
    return {"events": n}


def run_worker(job: dict[str, Any]) -> dict[str, Any]:
    scenario, impl = job["scenario"], job["impl"]
    size = {"single": 1, "batch100": 100, "batch1000": 1000}.get(scenario, 0)
    table: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
        ("setup", "input"): lambda: w_setup_input(job),
        ("setup", "ledger"): lambda: w_setup_ledger(job),
        ("setup", "es"): lambda: w_setup_es(job),
        ("verify", "govledger"): lambda: gl_verify(job),
        ("verify", "bare"): lambda: bare_verify(job),
        ("replay", "govledger"): lambda: gl_replay(job),
        ("replay", "eventsourcing"): lambda: es_replay(job),
        ("replay", "eventsourcing-app"): lambda: es_replay({**job, "section_size": 10}),
    }
    if size:
        table[(scenario, "govledger")] = lambda: gl_append(job, size)
        table[(scenario, "bare")] = lambda: bare_append(job, size)
        table[(scenario, "eventsourcing")] = lambda: es_append(
            job["jsonl"], job["db"], job["n"], size
        )
        table[(scenario, "eventsourcing-app")] = lambda: es_app_append(
            job["jsonl"], job["db"], job["n"], size
        )
    fn = table[(scenario, impl)]
    # Import before the clock starts: timings are of the work, not of module loading.
    for module in {
        "govledger": ("ledger.store.sqlite", "ledger.verify.verifier", "projections.driver"),
        "eventsourcing": ("eventsourcing.sqlite", "eventsourcing.system"),
        "eventsourcing-app": ("eventsourcing.sqlite", "eventsourcing.system"),
        "bare": ("nacl.bindings",),
    }.get(impl, ()):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    before = resource.getrusage(resource.RUSAGE_SELF)
    rss_start = before.ru_maxrss
    prof = cProfile.Profile() if job.get("profile") else None
    start = time.perf_counter()
    out = prof.runcall(fn) if prof is not None else fn()
    seconds = time.perf_counter() - start
    try:  # reap govledger's helper processes so their CPU and memory are counted
        from ledger.crypto import pool as workers

        workers.shutdown()
    except ImportError:
        pass
    if prof is not None:
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
        print(buf.getvalue(), file=sys.stderr)
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.update(
        seconds=seconds,
        rss_start_mb=rss_start / 1024,
        peak_rss_mb=me.ru_maxrss / 1024,
        # Helper processes (govledger's signing workers): the largest one's peak, and CPU.
        children_peak_rss_mb=kids.ru_maxrss / 1024,
        cpu_s=me.ru_utime
        + me.ru_stime
        - before.ru_utime
        - before.ru_stime
        + kids.ru_utime
        + kids.ru_stime,
    )
    return out


# --- driver -----------------------------------------------------------------------------------


def spawn(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.stderr:
        print(proc.stderr, file=sys.stderr, end="")
    if proc.returncode != 0:
        # Recorded, not fatal: the other scenarios still run and print.
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {
            "scenario": job["scenario"],
            "impl": job["impl"],
            "events": 0,
            "seconds": 0.0,
            "events_per_s": 0.0,
            "peak_rss_mb": 0.0,
            "error": tail,
        }
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(scenario=job["scenario"], impl=job["impl"])
    result["events_per_s"] = result["events"] / result["seconds"] if result["seconds"] else 0.0
    return result


def default_tmp() -> Path:
    """The system's temporary directory (``tempfile.gettempdir()``: ``TMPDIR`` when set)."""
    return Path(tempfile.gettempdir())


def log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--events", type=int, default=100_000, help="events per scenario (100000)")
    ap.add_argument(
        "--single",
        type=int,
        default=5_000,
        help="events for durable single appends (5000: one fsync each)",
    )
    ap.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, from {','.join(SCENARIOS)}",
    )
    ap.add_argument(
        "--tmp",
        type=Path,
        default=None,
        help="directory for the files (default: the system temporary directory, TMPDIR)",
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the govledger runs (top 25 by own time on stderr)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every scenario N times, govledger and its baselines alternating in each "
        "round; the table gives medians and the range of the per-round ratios (1)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--table", type=Path, help="print the table of a saved --json output")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0
    if args.table:
        print_table(json.loads(args.table.read_text(encoding="utf-8"))["results"])
        return 0
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        ap.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(SCENARIOS)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    tmp = Path(tempfile.mkdtemp(prefix="govledger-bench-", dir=args.tmp or default_tmp()))
    quiet = args.json
    results: list[dict[str, Any]] = []
    try:
        results = run_all(args, scenarios, tmp, quiet)
    finally:
        if args.keep:
            log(f"kept {tmp}", quiet)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "events": args.events,
                    "single": args.single,
                    "rounds": args.rounds,
                    "cpus": os.cpu_count(),
                    "python": sys.version.split()[0],
                    "sqlite": sqlite3.sqlite_version,
                    "results": results,
                },
                indent=2,
            )
        )
    else:
        print_table(results)
    return 0


def run_all(
    args: argparse.Namespace, scenarios: list[str], tmp: Path, quiet: bool
) -> list[dict[str, Any]]:
    from ledger.crypto.keyfiles import KeyRing

    ring = KeyRing(tmp / "keys")
    ring.create("root")
    ring.create("recorder")
    jsonl = tmp / "input.jsonl"
    appends = [s for s in scenarios if s in ("single", "batch100", "batch1000")]
    need = max([args.single if s == "single" else args.events for s in appends], default=0)
    results = []
    base = {"keys": str(tmp / "keys"), "jsonl": str(jsonl), "profile": args.profile}
    if appends or "replay" in scenarios:
        need = max(need, args.events if "replay" in scenarios else 0)
        log(f"setup: generating {need:,} recorder-signed drafts", quiet)
        spawn({**base, "scenario": "setup", "impl": "input", "need": need})
    fixture = tmp / "fixture.db"
    if "verify" in scenarios or "replay" in scenarios:
        log(f"setup: generate + build_ledger, {args.events:,} events (NORMAL)", quiet)
        r = spawn(
            {**base, "scenario": "setup", "impl": "ledger", "db": str(fixture), "n": args.events}
        )
        r["scenario"], r["impl"] = "build (setup)", "govledger"
        results.append(r)
    for round_, s in ((i, s) for i in range(args.rounds) for s in scenarios):
        n = args.single if s == "single" else args.events
        impls = ("govledger", *BASELINES[s])
        # Alternate who goes first, so a machine that speeds up or slows down during a run
        # does not favour one side in every round.
        for impl in impls if round_ % 2 == 0 else impls[::-1]:
            job = {
                **base,
                "scenario": s,
                "impl": impl,
                "n": n,
                "db": str(tmp / f"{s}-{impl}.db"),
                "profile": args.profile and impl == "govledger",
            }
            if s == "verify":
                job["db"] = str(fixture)
            elif s == "replay" and impl == "govledger":
                shutil.copy(fixture, job["db"])  # replay writes read models into the file
            elif s == "replay":
                job["es_db"] = str(tmp / "replay-es.db")
                if not Path(job["es_db"]).exists():  # one store for both read baselines
                    spawn(
                        {**base, "scenario": "setup", "impl": "es", "es_db": job["es_db"], "n": n}
                    )
            which = f" round {round_ + 1}/{args.rounds}" if args.rounds > 1 else ""
            log(f"{s}: {impl} ({n:,} events){which}", quiet)
            r = spawn(job)
            r["round"] = round_
            log(
                f"  {r['events']:,} events in {r['seconds']:.2f} s: "
                f"{r['events_per_s']:,.0f}/s, peak RSS {r['peak_rss_mb']:.0f} MB",
                quiet,
            )
            results.append(r)
            for p in tmp.glob(f"{s}-{impl}.db*"):
                p.unlink()
    return results


def _rss(r: dict[str, Any]) -> str:
    kids = r.get("children_peak_rss_mb", 0.0)
    return f"{r['peak_rss_mb']:.0f}" + (f" (+{kids:.0f})" if kids >= 1 else "")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _per_event_cpu(r: dict[str, Any]) -> float:
    return float(r.get("cpu_s", 0.0)) / max(int(r["events"]), 1)


def print_table(results: list[dict[str, Any]]) -> None:
    """One row per scenario and baseline. With several rounds: medians over the rounds, and
    the ratio as the median of the per-round ratios (govledger and the baseline of the same
    round) with their range."""
    cols = (
        "scenario",
        "baseline",
        "events",
        "seconds",
        "events/s",
        "CPU s",
        "peak RSS MB",
        "baseline ev/s",
        "baseline RSS MB",
        "ratio",
        "CPU ratio",
    )
    rows: list[tuple[str, ...]] = []
    rounds = len({r.get("round", 0) for r in results}) or 1
    scenarios = list(dict.fromkeys(r["scenario"] for r in results if r["impl"] == "govledger"))
    for s in scenarios:
        mine_all = [r for r in results if r["scenario"] == s and r["impl"] == "govledger"]
        failed = [r for r in mine_all if "error" in r]
        if failed:
            rows.append((s, "—", "FAILED", failed[0]["error"][:60], "", "", "", "", "", "", ""))
            continue
        mine = (
            f"{mine_all[0]['events']:,}",
            f"{_median([r['seconds'] for r in mine_all]):.2f}",
            f"{_median([r['events_per_s'] for r in mine_all]):,.0f}",
            f"{_median([r.get('cpu_s', 0.0) for r in mine_all]):.1f}",
            _rss(max(mine_all, key=lambda r: r["peak_rss_mb"])),
        )
        others = list(
            dict.fromkeys(
                b["impl"] for b in results if b["scenario"] == s and b["impl"] != "govledger"
            )
        )
        if not others:
            rows.append((s, "—", *mine, "", "", "", ""))
        for impl in others:
            theirs = [b for b in results if b["scenario"] == s and b["impl"] == impl]
            bad = [b for b in theirs if "error" in b]
            if bad:
                rows.append((s, impl, *mine, "FAILED", bad[0]["error"][:40], "", ""))
                continue
            by_round = {b.get("round", 0): b for b in theirs}
            ratios, cpu_ratios = [], []
            for r in mine_all:
                b = by_round.get(r.get("round", 0))
                if b is None or not b["events_per_s"]:
                    continue
                ratios.append(r["events_per_s"] / b["events_per_s"])
                if _per_event_cpu(r):
                    cpu_ratios.append(_per_event_cpu(b) / _per_event_cpu(r))
            ratio = f"{_median(ratios):.2f}×"
            if len(ratios) > 1:
                ratio += f" ({min(ratios):.2f}–{max(ratios):.2f})"
            rows.append(
                (
                    s,
                    impl,
                    *mine,
                    f"{_median([b['events_per_s'] for b in theirs]):,.0f}",
                    _rss(max(theirs, key=lambda b: b["peak_rss_mb"])),
                    ratio,
                    f"{_median(cpu_ratios):.2f}×" if cpu_ratios else "",
                )
            )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]

    def fmt(values: tuple[str, ...]) -> str:
        return "  ".join(
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    print(fmt(cols))
    print("-" * len(fmt(cols)))
    for row in rows:
        print(fmt(row))
    if rounds > 1:
        print(
            f"\n{rounds} rounds: seconds, events/s and CPU are medians over the rounds, peak RSS "
            "the largest; ratio = median of the per-round ratios (range in brackets)."
        )
    print(
        "\nratio = govledger events/s ÷ baseline events/s (1.00× = as fast as the baseline); "
        "CPU ratio = baseline CPU per event ÷ govledger CPU per event (steadier than wall "
        "time on a busy machine). "
        "CPU s: user + system of the process and its helpers; (+N): peak RSS of the largest "
        "helper process (govledger's signing workers). single: one transaction and fsync per "
        "event (synchronous=FULL); batchN: N events per transaction; verify: the bare loop "
        "uses one core."
    )


if __name__ == "__main__":
    sys.exit(main())
