"""What the two HTTP applications share, the service's (``app.py``) and the witness's
(``witness_app.py``): a request body read within its size limit, and the access log of one JSON
line per request. Both run on Starlette and uvicorn (``server.py``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

import orjson
from starlette.requests import Request

from ledger.errors import InputError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class HttpError(InputError):
    """A request refused before it reaches the library, with its HTTP status and kind."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body; 413 (``HttpError``) once it is over ``limit`` bytes, by its declared
    length or, without one (chunked), as it arrives, so no more than that is ever held."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HttpError(413, "too_large", f"request body is {declared} bytes, over {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "too_large", f"request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def write_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class AccessLog:
    """One JSON line per request: ts, method, path, query, status, ms, client, then those of
    ``fields`` the handler set in the request's state, then ``extra``; ``null`` values left
    out. ``on_status`` (say, a response counter) sees every status."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        fields: Sequence[str],
        write: Callable[[str], None] | None = None,
        on_status: Callable[[int], None] | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        self.app = app
        self.fields = tuple(fields)
        self.write = write or write_stderr
        self.on_status = on_status
        self.extra = dict(extra or {})

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if self.on_status is not None:
                self.on_status(status)
            state = scope.get("state", {})
            line = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "method": scope["method"],
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1") or None,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1000, 2),
                "client": (scope.get("client") or [None])[0],
                **{name: state.get(name) for name in self.fields},
                **self.extra,
            }
            self.write(orjson.dumps({k: v for k, v in line.items() if v is not None}).decode())
