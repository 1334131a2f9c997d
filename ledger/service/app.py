"""The ASGI application of ``govledger serve`` (Starlette): appends, reads, proofs, tiles, and
the recording API's gate and lessons.

Errors are ``{"error": {"kind", "detail"}}`` with the CLI's messages as ``detail``; nothing is
written on any error. Blocking store work runs in worker threads (the store, SQLite or
PostgreSQL, gives each thread its own connection); appends go through the one writer of ``GroupCommitter``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.errors import (
    DecodeError,
    DuplicateEventId,
    InputError,
    LedgerError,
    StoreError,
    UnauthorizedWrite,
)
from ledger.event.canonical import canonical, loads
from ledger.event.drafts import prepare
from ledger.event.envelope import Event
from ledger.recording.gate import Decision, current, denial_draft, judge
from ledger.recording.lessons import lessons_of
from ledger.service import tiles, tokens
from ledger.service.asgi import AccessLog, ASGIApp, HttpError, read_body
from ledger.service.bodies import JSON_TYPES, LINES_TYPES, accepted
from ledger.service.groupcommit import Exclusive, GroupCommitter
from ledger.service.metrics import Metrics
from ledger.store.base import EventFilter
from ledger.store.sqlite import Ledger, row_to_event
from ledger.tlog.notes import parse_unverified_checkpoint
from ledger.tlog.proofs import latest_checkpoint, prove_inclusion, sign_current_checkpoint

MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body accepted (413 above)."""
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
JSONL = "application/jsonl"


def status_of(e: LedgerError) -> tuple[int, str]:
    """The HTTP status and error kind of a library error (SPEC §7)."""
    if isinstance(e, HttpError):
        return e.status, e.kind
    if isinstance(e, tokens.Revoked):
        return 401, "unauthenticated"
    if isinstance(e, DuplicateEventId):
        return 409, "duplicate_id"
    if isinstance(e, tokens.Forbidden | UnauthorizedWrite):
        return 403, "forbidden"
    if isinstance(e, DecodeError):
        return 400, "malformed"
    if isinstance(e, InputError):
        return 422, "invalid"
    if isinstance(e, StoreError):
        return 503, "unavailable"
    return 500, "internal"


@dataclass
class Service:
    """What the handlers share: the ledger, the writer, the keys, the counters."""

    ledger: Ledger
    keyring: KeyRing
    checkpoint_signer: str | None = None
    max_body: int = MAX_BODY_BYTES
    metrics: Metrics = field(default_factory=Metrics)
    committer: GroupCommitter | None = None
    access_log: Callable[[str], None] | None = None
    writer_lock: Exclusive | None = None
    """Held by the writer around its transactions (shared by the server processes of one
    SQLite file: ``ledger.service.workers``)."""
    worker: int | None = None
    """This server process's number in a service of several (named in the access log)."""
    on_ready: Callable[[], None] | None = None
    """Called once the writer has started (the application can serve)."""
    _signers: dict[str, Signer] = field(default_factory=dict)
    _tokens: dict[str, tokens.Token] = field(default_factory=dict)
    _read_lock: threading.Lock = field(default_factory=threading.Lock)
    _last_signed: float = 0.0

    def cached_token(self, secret: str) -> tokens.Token | None:
        """The unrevoked token of ``secret``, looked up once, then from the cache (no query:
        after each commit by the writer, a query on the event loop's connection re-reads the
        pages SQLite had cached)."""
        key = tokens.digest(secret)
        token = self._tokens.get(key)
        if token is None:
            token = tokens.lookup(self.ledger, secret)
            if token is not None:
                self._tokens[key] = token
        return token

    def forget_token(self, name: str) -> None:
        """Drop the cached token ``name`` (found revoked)."""
        self._tokens = {k: t for k, t in self._tokens.items() if t.name != name}

    def loaded_signer(self, name: str) -> Signer | None:
        """The key ``name`` if already loaded (no file read: safe on the event loop)."""
        return self._signers.get(name)

    def signer(self, name: str) -> Signer:
        if name not in self._signers:
            self._signers[name] = self.keyring.load(name)
        return self._signers[name]

    def checkpoint(self) -> str:
        """The latest signed checkpoint; with a checkpoint signer, a fresh one when the log
        has grown (at most one signing a second)."""
        ledger = self.ledger
        size = ledger.size
        note = latest_checkpoint(ledger, 0)
        stale = note is None or parse_unverified_checkpoint(note).size < size
        signer = self.checkpoint_signer
        if (
            stale
            and signer is not None
            and (note is None or time.monotonic() - self._last_signed >= 1.0)
        ):
            self._last_signed = time.monotonic()
            return sign_current_checkpoint(ledger, self.signer(signer))
        if note is None:
            raise HttpError(
                404, "not_found", "no signed checkpoint yet (govledger checkpoint --signer NAME)"
            )
        return note


def error_response(service: Service, e: LedgerError) -> JSONResponse:
    status, kind = status_of(e)
    service.metrics.error(kind)
    return JSONResponse({"error": {"kind": kind, "detail": e.message}}, status_code=status)


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


# --- appends ------------------------------------------------------------------------------


async def post_events(request: Request) -> Response:
    service = _service(request)
    started = time.perf_counter()
    try:
        # (1) who: the bearer token (found once, then cached; its revocation is checked
        # by the writer, inside the transaction).
        token = _token(service, request, cached=True)
        request.state.token = token.name
        # (2) what: the body, within its size limit, as drafts.
        body = await read_body(request, service.max_body)
        # (3) may this token append them, and are they valid (the catalog's messages)?
        prepared = accepted(body, _media_type(request), token)
        read = time.perf_counter() - started
        # The key file is read once (in a worker thread); later requests find it loaded.
        signer = service.loaded_signer(token.signer)
        if signer is None:
            signer = await run_in_threadpool(service.signer, token.signer)
        # (4) appended with whatever other requests arrive meanwhile; durable on return.
        assert service.committer is not None
        # The token is looked up again by the writer, inside the transaction: a revocation
        # committed meanwhile refuses the request (401) and drops the cached token.
        events = await service.committer.submit(prepared, signer, token.name)
    except LedgerError as e:
        if isinstance(e, tokens.Revoked):
            service.forget_token(token.name)
        return error_response(service, e)
    request.state.events = len(events)
    service.metrics.appended(len(events), time.perf_counter() - started, read)
    return Response(
        orjson.dumps([_receipt(e) for e in events]), status_code=201, media_type="application/json"
    )


def _receipt(e: Event) -> dict[str, Any]:
    return {"seq": e.seq, "id": e.id, "ts": e.ts, "hash": e.hash}


def _token(service: Service, request: Request, *, cached: bool = False) -> tokens.Token:
    """The request's token, looked up in the ledger; ``cached``: from the tokens found before
    (for appends only: the writer checks revocation again inside its transaction)."""
    header = request.headers.get("authorization")
    if header is None:
        raise HttpError(401, "unauthenticated", "missing Authorization: Bearer <token>")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise HttpError(401, "unauthenticated", "Authorization: expected Bearer <token>")
    secret = secret.strip()
    token = service.cached_token(secret) if cached else tokens.lookup(service.ledger, secret)
    if token is None:
        raise HttpError(401, "unauthenticated", "unknown or revoked token")
    return token


def _media_type(request: Request, *, lines: bool = True) -> str:
    value = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if value not in (JSON_TYPES | LINES_TYPES if lines else JSON_TYPES):
        wanted = " or application/x-ndjson (JSON Lines)" if lines else ""
        raise HttpError(
            415,
            "unsupported_media_type",
            f"Content-Type {value or '(none)'!r}: expected application/json{wanted}",
        )
    return value


# --- the recording API: gate and lessons ----------------------------------------------------

GATE_FIELDS = ("agent", "tool", "side_effect", "run")


async def post_gate(request: Request) -> Response:
    """``POST /v1/gate`` ``{"agent", "tool", "side_effect", "run"}``: the gate's decision from
    the read models caught up to the head; a denial is recorded first as ``guardrail.triggered``
    signed by the token's key (``ledger.recording.gate``). A denial that could not be recorded
    answers the error with the decision beside it."""
    service = _service(request)
    started = time.perf_counter()
    try:
        # (1) who, and what is asked.
        token = _token(service, request)
        request.state.token = token.name
        _media_type(request, lines=False)
        agent, tool, side_effect, run = _question(await read_body(request, service.max_body))
        # (2) may this token ask about the agent, and record a denial for it?
        token.check_agent(agent, "gate")
        token.check([(denial_draft(Decision(False, ""), agent, tool, side_effect, run), "gate")])

        # (3) the decision, from the read models caught up by one reader at a time.
        def decide() -> Decision:
            with service._read_lock:
                return judge(current(service.ledger), agent, tool, side_effect, run)

        decision = await run_in_threadpool(decide)
    except LedgerError as e:
        return error_response(service, e)
    if decision.allowed:
        return JSONResponse(decision.as_json())
    # (4) a denial: recorded before the answer, or the error with the decision.
    try:
        signer = await run_in_threadpool(service.signer, token.signer)
        assert service.committer is not None
        prepared = [prepare(denial_draft(decision, agent, tool, side_effect, run), "gate")]
        [event] = await service.committer.submit(prepared, signer)
    except LedgerError as e:
        status, kind = status_of(e)
        service.metrics.error(kind)
        body = {"error": {"kind": kind, "detail": e.message}, "decision": decision.as_json()}
        return JSONResponse(body, status_code=status)
    request.state.events = 1
    service.metrics.appended(1, time.perf_counter() - started)
    return JSONResponse(replace(decision, guardrail_seq=event.seq).as_json())


def _question(body: bytes) -> tuple[str, str, str, str | None]:
    """The gate's question: ``agent``, ``tool``, ``side_effect`` (strings), ``run`` (a string
    or null, optional)."""
    value = loads(body, "request body")
    if not isinstance(value, dict):
        raise HttpError(400, "malformed", "request body: expected a JSON object")
    unknown = sorted(set(value) - set(GATE_FIELDS))
    if unknown:
        raise InputError(f"gate: unknown field {unknown[0]!r} (expected {', '.join(GATE_FIELDS)})")
    for name in GATE_FIELDS[:3]:
        if not isinstance(value.get(name), str) or not value[name]:
            raise InputError(
                f"gate: {name}: expected a non-empty string, found {value.get(name)!r}"
            )
    run = value.get("run")
    if run is not None and (not isinstance(run, str) or not run):
        raise InputError(f"gate: run: expected a non-empty string or null, found {run!r}")
    return value["agent"], value["tool"], value["side_effect"], run


async def get_lessons(request: Request) -> Response:
    """``GET /v1/agents/{agent}/lessons``: the agent's emerged correction patterns as JSON
    Lines, from the read models caught up to the head."""
    service = _service(request)
    agent = request.path_params["agent"]
    try:
        token = _token(service, request)
        request.state.token = token.name
        token.check_agent(agent, "lessons")
    except LedgerError as e:
        return error_response(service, e)

    def work(service: Service) -> Response:
        return _lines([lesson.as_json() for lesson in lessons_of(current(service.ledger), agent)])

    return await _read(request, work, models=True)


# --- reads --------------------------------------------------------------------------------


def _int(request: Request, name: str, default: int | None = None, low: int = 0) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < low:
        raise HttpError(400, "malformed", f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _lines(values: list[dict[str, Any]] | list[bytes]) -> Response:
    text = b"".join(
        (v if isinstance(v, bytes) else json.dumps(v, ensure_ascii=False).encode()) + b"\n"
        for v in values
    )
    return Response(text, media_type=JSONL)


async def _read(
    request: Request, work: Callable[[Service], Response], *, models: bool = False
) -> Response:
    service = _service(request)

    def run() -> Response:
        if not models:
            return work(service)
        # Read models are caught up (a write) by one reader at a time.
        with service._read_lock:
            return work(service)

    try:
        return await run_in_threadpool(run)
    except LedgerError as e:
        return error_response(service, e)


async def get_events(request: Request) -> Response:
    first = _int(request, "from", 1, 1) or 1
    last = _int(request, "to", None, 1)
    limit = min(_int(request, "limit", DEFAULT_LIMIT, 1) or DEFAULT_LIMIT, MAX_LIMIT)
    q = request.query_params
    kind = q.get("type")
    wanted = EventFilter(run=q.get("run"), agent=q.get("agent"), types=(kind,) if kind else None)

    def work(service: Service) -> Response:
        rows = []
        for r in service.ledger.iter_rows(from_seq=first, to_seq=last, filter=wanted):
            rows.append(canonical(row_to_event(r).envelope()))
            if len(rows) >= limit:
                break
        return _lines(rows)

    return await _read(request, work)


async def get_run(request: Request) -> Response:
    run = request.path_params["run"]

    def work(service: Service) -> Response:
        from ledger.app.governance import read_models
        from projections.runs.queries import get_run as query

        with read_models(service.ledger) as db:
            view = query(db, run)
        if view is None:
            raise HttpError(404, "not_found", f"no run {run!r} in the ledger")
        return JSONResponse(view.as_json())

    return await _read(request, work, models=True)


async def get_findings(request: Request) -> Response:
    q = request.query_params
    limit = _int(request, "limit", None, 1)

    def work(service: Service) -> Response:
        from ledger.app.governance import read_models
        from projections.findings.queries import iter_findings

        with read_models(service.ledger) as db:
            found = [
                f.as_json()
                for f in iter_findings(
                    db,
                    kinds=q.getlist("kind"),
                    severity=q.get("severity"),
                    agent=q.get("agent"),
                    run=q.get("run"),
                    limit=limit,
                )
            ]
        return _lines(found)

    return await _read(request, work, models=True)


async def get_tiers(request: Request) -> Response:
    def work(service: Service) -> Response:
        from ledger.app.governance import read_models
        from projections.tiers.queries import agents, tier_json

        with read_models(service.ledger) as db:
            return _lines([tier_json(a) for a in agents(db)])

    return await _read(request, work, models=True)


async def get_checkpoint(request: Request) -> Response:
    return await _read(request, lambda s: PlainTextResponse(s.checkpoint()))


async def get_proof(request: Request) -> Response:
    raw = request.path_params["seq"]

    def work(service: Service) -> Response:
        if not raw.isdigit() or int(raw) < 1:
            raise HttpError(400, "malformed", f"seq {raw!r}: expected an integer >= 1")
        seq = int(raw)
        if seq > service.ledger.size:
            raise HttpError(
                404, "not_found", f"seq {seq} is not in the log (size {service.ledger.size})"
            )
        service.checkpoint()
        return PlainTextResponse(prove_inclusion(service.ledger, seq))

    return await _read(request, work)


async def get_consistency(request: Request) -> Response:
    old = _int(request, "old", None, 0)

    def work(service: Service) -> Response:
        if old is None:
            raise HttpError(400, "malformed", "old: missing (the size of the older tree)")
        note = service.checkpoint()
        size = parse_unverified_checkpoint(note).size
        if old > size:
            raise HttpError(
                422, "invalid", f"old: {old} is larger than the latest checkpoint's size {size}"
            )
        proof = service.ledger.consistency_proof(old, size) if 0 < old < size else []
        return JSONResponse(
            {
                "old": old,
                "size": size,
                "proof": [base64.b64encode(h).decode() for h in proof],
                "checkpoint": note,
            }
        )

    return await _read(request, work)


async def get_tile(request: Request) -> Response:
    path = "tile/" + request.path_params["path"]

    def work(service: Service) -> Response:
        try:
            tile = tiles.parse_path(path)
        except InputError as e:
            raise HttpError(404, "not_found", e.message) from e
        size = service.ledger.size
        if not tiles.available(tile, size):
            raise HttpError(404, "not_found", f"{path}: not in the tree of size {size}")
        data = tiles.tile_bytes(service.ledger, tile, size)
        cache = "public, max-age=31536000, immutable" if tile.w == tiles.WIDTH else "no-cache"
        return Response(
            data, media_type="application/octet-stream", headers={"Cache-Control": cache}
        )

    return await _read(request, work)


async def healthz(request: Request) -> Response:
    return await _read(request, lambda s: JSONResponse({"ok": True, "size": s.ledger.size}))


async def metrics(request: Request) -> Response:
    text = _service(request).metrics.render()
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


# --- the application ----------------------------------------------------------------------


ROUTES = [
    Route("/v1/events", post_events, methods=["POST"]),
    Route("/v1/events", get_events, methods=["GET"]),
    Route("/v1/gate", post_gate, methods=["POST"]),
    Route("/v1/agents/{agent:path}/lessons", get_lessons),
    Route("/v1/runs/{run}", get_run),
    Route("/v1/findings", get_findings),
    Route("/v1/tiers", get_tiers),
    Route("/v1/checkpoint", get_checkpoint),
    Route("/v1/proof/{seq}", get_proof),
    Route("/v1/consistency", get_consistency),
    Route("/checkpoint", get_checkpoint),
    Route("/tile/{path:path}", get_tile),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
]


def create_app(service: Service) -> ASGIApp:
    """The service's ASGI application: starts the writer at startup, and at shutdown commits
    (or fails) whole every append already queued before the ledger is closed."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(tokens.ensure_table, service.ledger)
        committer = GroupCommitter(
            service.ledger, on_group=service.metrics.group, exclusive=service.writer_lock
        )
        service.committer = committer
        committer.start()
        if service.on_ready is not None:
            service.on_ready()
        try:
            yield
        finally:
            await committer.close()

    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.state.service = service

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(
            service, HttpError(404, "not_found", f"{request.url.path}: no such resource")
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return error_response(
            service,
            HttpError(
                405, "method_not_allowed", f"{request.method} {request.url.path}: not allowed"
            ),
        )

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    return AccessLog(
        app,
        fields=("token", "events"),
        write=service.access_log,
        on_status=service.metrics.response,
        extra={"worker": service.worker},
    )
