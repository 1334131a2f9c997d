"""Where a recorder's events go: the ``Transport`` seam, a local store and the HTTP service.

A transport takes a batch of drafts and returns once they are durable, with a ``Receipt`` per
event (SPEC §7 ``POST /v1/events`` answers ``[{"seq", "id", "ts", "hash"}]``). ``LocalTransport``
appends to a ``Ledger`` with a signer; ``HttpTransport`` posts to ``govledger serve`` with a
bearer token, mapping the service's statuses to the library's errors. Refusals keep the
messages of the CLI: a local one is the store's own error, a remote one the service's
``detail``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.crypto.keyfiles import Signer
from ledger.errors import (
    DuplicateEventId,
    EventValidationError,
    InputError,
    LedgerError,
    StoreError,
    UnauthorizedWrite,
)
from ledger.event.drafts import Draft
from ledger.store.sqlite import Ledger


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a recorded event landed: its seq, id, ts and hash (SPEC §7)."""

    seq: int
    id: str
    ts: str
    hash: str


class Transport(Protocol):
    """What a ``Recorder`` needs from a log: append a batch, all or nothing, durably."""

    def append(self, drafts: Sequence[Draft]) -> list[Receipt]:
        """Append ``drafts`` atomically; return once they are durable (a ``LedgerError``
        otherwise, with nothing written)."""
        ...

    def close(self) -> None: ...


class LocalTransport:
    """Appends to a local ``Ledger`` (thread-safe: the ledger gives each thread a connection
    and serializes writes)."""

    def __init__(self, ledger: Ledger, signer: Signer) -> None:
        self.ledger = ledger
        self.signer = signer

    def append(self, drafts: Sequence[Draft]) -> list[Receipt]:
        events = self.ledger.append_many(drafts, signer=self.signer)
        return [Receipt(e.seq, e.id, e.ts, e.hash) for e in events]

    def close(self) -> None:
        self.ledger.close()


_STATUS_ERRORS: dict[int, type[LedgerError]] = {
    400: InputError,
    401: UnauthorizedWrite,
    403: UnauthorizedWrite,
    409: DuplicateEventId,
    413: InputError,
    422: EventValidationError,
}
"""SPEC §7 statuses of ``POST /v1/events`` and the library error each one raises."""


class HttpTransport:
    """Posts drafts to the service's ``POST /v1/events`` (SPEC §7) as a JSON array, with
    ``Authorization: Bearer <token>``. One request per batch: the service commits it all or
    nothing. The service signs with the key its token is bound to."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"service url {url!r}: expected http:// or https://")
        if not token:
            raise InputError("service token: empty")
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def append(self, drafts: Sequence[Draft]) -> list[Receipt]:
        body = json.dumps([_draft_json(d) for d in drafts], ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            f"{self.url}/v1/events",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            raise _refusal(e, self.url) from e
        except (urllib.error.URLError, OSError) as e:
            raise StoreError(f"service at {self.url}: unreachable ({e})") from e
        except ValueError as e:
            raise StoreError(f"service at {self.url}: answer is not JSON ({e})") from e
        try:
            return [
                Receipt(int(r["seq"]), str(r["id"]), str(r["ts"]), str(r["hash"])) for r in answer
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(
                f"service at {self.url}: expected [{{seq, id, ts, hash}}], found {answer!r:.200}"
            ) from e

    def close(self) -> None:
        pass


def _draft_json(d: Draft) -> dict[str, Any]:
    """A draft as an import line (SPEC §5): ``type`` and ``payload``, the rest when set."""
    out: dict[str, Any] = {"type": d.type, "payload": d.payload}
    for name in ("agent", "run", "actor", "id"):
        value = getattr(d, name)
        if value is not None:
            out[name] = value
    return out


def _refusal(e: urllib.error.HTTPError, url: str) -> LedgerError:
    """The library error of a refused request: the class from the status, the message from
    the service's ``{"error": {"kind", "detail"}}``."""
    try:
        detail = str(json.loads(e.read().decode("utf-8"))["error"]["detail"])
    except (ValueError, KeyError, TypeError, OSError):
        detail = f"HTTP {e.code} {e.reason}"
    cls = _STATUS_ERRORS.get(e.code)
    if cls is None:
        return StoreError(f"service at {url}: {detail}")
    return cls(detail)
