"""The HTTP witness of ``govledger witness serve`` (Starlette): C2SP tlog-witness.

- ``POST /add-checkpoint``: the body is an old size line (``old <N>``), the consistency proof
  lines, a blank line and the checkpoint note. The checks are ``ledger.tlog.witness``'s; each
  refusal's error class gives its status (``STATUSES``), as tlog-witness words them:
  400 malformed body or old size over the checkpoint's size, 403 no valid signature by the
  log's key, 404 an origin not followed, 409 an old size that is not the size last cosigned
  (the body is that size and a newline, ``Content-Type: text/x.tlog.size``), 422 a size-0
  checkpoint without the empty tree's root, a proof from size 0, equal sizes with another root
  or a consistency proof that fails; and 413 over the body limit, 500 when the witness's state
  cannot be read or written. 200 answers the cosignature line (``text/plain``).
- ``GET /<hex SHA-256 of the origin>/checkpoint``: the latest checkpoint cosigned of that log,
  with the log's signature lines that verified and the cosignature (404 before the first).

Refusals answer one line of text saying why. The check of the old size and the keeping of the
new checkpoint run under the origin's lock (``WitnessState.locked``) in a worker thread, so of
two requests from one old size one is cosigned and the other gets 409.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ledger.errors import (
    CheckpointError,
    InputError,
    LedgerError,
    NoteSignatureError,
    OldSizeMismatch,
    ProofError,
    StateError,
    UnknownLog,
)
from ledger.service.asgi import AccessLog, ASGIApp, HttpError, read_body
from ledger.tlog.notes import Verifier, parse_unverified_checkpoint, parse_witness_request
from ledger.tlog.witness import WitnessState, witness_checkpoint

if TYPE_CHECKING:
    from ledger.tlog.cosignatures import CosignerKey

MAX_BODY_BYTES = 64 * 1024
"""Largest add-checkpoint body accepted (413 above): 63 proof lines and a checkpoint with its
signatures need a few KiB."""
SIZE_TYPE = "text/x.tlog.size"
"""The Content-Type of a 409's body, the size the witness last cosigned (tlog-witness)."""

STATUSES: tuple[tuple[type[LedgerError], int, str], ...] = (
    (HttpError, 413, "too_large"),  # the status is the HttpError's own
    (OldSizeMismatch, 409, "conflict"),
    (UnknownLog, 404, "unknown_log"),
    (NoteSignatureError, 403, "bad_signature"),
    (ProofError, 422, "inconsistent"),
    (CheckpointError, 400, "malformed"),
    (InputError, 400, "malformed"),
    (StateError, 500, "state"),
)
"""Error class → HTTP status and the access log's ``kind``, the first match (subclasses
first); any other ``LedgerError`` is 500."""


def status_of(e: LedgerError) -> tuple[int, str]:
    """The HTTP status and kind of a refusal (``STATUSES``)."""
    if isinstance(e, HttpError):
        return e.status, e.kind
    for cls, status, kind in STATUSES:
        if isinstance(e, cls):
            return status, kind
    return 500, "internal"


def _now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class Witness:
    """What the handlers share: the witness's name and key, the logs it follows, its state."""

    name: str
    private_key: CosignerKey = field(repr=False)
    logs: tuple[Verifier, ...]
    state: WitnessState
    max_body: int = MAX_BODY_BYTES
    clock: Callable[[], int] = _now
    """The cosignatures' timestamps: POSIX seconds."""
    access_log: Callable[[str], None] | None = None
    """Where the access log's lines go (default: stderr)."""


def _witness(request: Request) -> Witness:
    witness: Witness = request.app.state.witness
    return witness


async def add_checkpoint(request: Request) -> Response:
    witness = _witness(request)
    try:
        # (1) the body, within its limit, parsed strictly (400 when it is not one).
        body = await read_body(request, witness.max_body)
        submitted = parse_witness_request(body)
        cp = parse_unverified_checkpoint(submitted.checkpoint_note, check_empty_root=False)
        request.state.origin, request.state.size = cp.origin, cp.size
        request.state.old = submitted.old_size
        # (2) the checks, the cosignature and the new state, under the origin's lock: in a
        # worker thread, since the lock and the state's fsync block.
        cosigned = await run_in_threadpool(
            witness_checkpoint,
            submitted,
            state=witness.state,
            logs=witness.logs,
            name=witness.name,
            private_key=witness.private_key,
            clock=witness.clock,
        )
    except LedgerError as e:
        return _refusal(request, e)
    return PlainTextResponse(cosigned.line)


def _refusal(request: Request, e: LedgerError) -> Response:
    status, kind = status_of(e)
    request.state.kind, request.state.detail = kind, e.message
    if isinstance(e, OldSizeMismatch):
        return Response(f"{e.size}\n", 409, headers={"content-type": SIZE_TYPE})
    if status == 500:  # the detail names the state's files: for the log, not the client
        return PlainTextResponse("the witness cannot read or write its state\n", 500)
    return PlainTextResponse(e.message + "\n", status)


async def get_checkpoint(request: Request) -> Response:
    witness = _witness(request)
    digest = request.path_params["digest"]
    try:
        note = await run_in_threadpool(witness.state.by_digest, digest)
    except StateError as e:
        return _refusal(request, e)
    if note is None:
        request.state.kind = "not_found"
        return PlainTextResponse(f"{digest}: no checkpoint cosigned of that log\n", 404)
    return PlainTextResponse(note)


ROUTES = [
    Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
    Route("/{digest}/checkpoint", get_checkpoint, methods=["GET"]),
]


def create_app(witness: Witness) -> ASGIApp:
    """The witness's ASGI application, with one JSON access-log line per request (method,
    path, status, milliseconds, client, and the origin, old size, size, refusal kind and
    detail when known)."""
    app = Starlette(routes=ROUTES)
    app.state.witness = witness

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"{request.url.path}: no such resource\n", 404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        headers = exc.headers if isinstance(exc, HTTPException) else None
        return PlainTextResponse(
            f"{request.method} {request.url.path}: not allowed\n", 405, headers=headers
        )

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    return AccessLog(
        app, fields=("origin", "old", "size", "kind", "detail"), write=witness.access_log
    )
