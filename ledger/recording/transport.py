"""Where a recorder's events go and its questions are answered: the ``Transport`` seam, a
local store and the HTTP service.

A transport takes a batch of drafts and returns once they are durable, with a ``Receipt`` per
event (SPEC §7 ``POST /v1/events`` answers ``[{"seq", "id", "ts", "hash"}]``); it answers the
gate (a denial recorded as ``guardrail.triggered`` before the answer) and lists an agent's
lessons, both from the read models caught up to the head. ``LocalTransport`` does all of it on
a ``Ledger`` with a signer; ``HttpTransport`` asks ``govledger serve`` with a bearer token
(``POST /v1/events``, ``POST /v1/gate``, ``GET /v1/agents/{agent}/lessons``), which does the
same on its ledger with the token's key, mapping the service's statuses to the library's
errors. Refusals keep the messages of the CLI: a local one is the store's own error, a remote
one the service's ``detail``.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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
from ledger.recording.gate import Decision, current, denial_draft, judge
from ledger.recording.lessons import Lesson, lessons_of
from ledger.store.sqlite import Ledger

Gated = tuple[Decision, LedgerError | None]
"""The gate's answer through a transport: the decision (a denial with the seq of its
``guardrail.triggered``), and the error that kept a denial from being recorded (then its
``guardrail_seq`` is None; the recorder's failure policy decides)."""


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

    def gate(self, agent: str, tool: str, side_effect: str, run: str | None) -> Gated:
        """The gate's decision (``ledger.recording.gate``), a denial recorded first."""
        ...

    def lessons(self, agent: str) -> list[Lesson]:
        """The emerged correction patterns of ``agent``."""
        ...

    def close(self) -> None: ...


class _Pending:
    """One thread's batch waiting for a group commit, and what became of it."""

    __slots__ = ("done", "drafts", "error", "receipts")

    def __init__(self, drafts: Sequence[Draft]) -> None:
        self.drafts = drafts
        self.done = False
        self.receipts: list[Receipt] = []
        self.error: BaseException | None = None


class LocalTransport:
    """Appends to a store it holds, SQLite or PostgreSQL (thread-safe: the store gives each
    thread a connection and serializes writes).

    Group commit: batches that threads append while another commit is in flight wait for it,
    then the first of them to get the commit appends all that are waiting in one write
    transaction (one sync), each batch contiguous and in order. If that transaction fails, each
    of its batches is appended again on its own, so one batch's refusal (a duplicate id, an
    unregistered agent) fails no other. A lone batch is appended as it comes."""

    def __init__(self, ledger: Ledger, signer: Signer) -> None:
        self.ledger = ledger
        self.signer = signer
        self._queue: list[_Pending] = []
        self._queued = threading.Lock()
        self._committing = threading.Lock()

    def append(self, drafts: Sequence[Draft]) -> list[Receipt]:
        mine = _Pending(drafts)
        with self._queued:
            self._queue.append(mine)
        while not mine.done:
            with self._committing:
                if mine.done:  # a commit that ended while this thread waited took it
                    break
                with self._queued:
                    group, self._queue = self._queue, []
                self._commit(group)
        if mine.error is not None:
            raise mine.error
        return mine.receipts

    def _commit(self, group: list[_Pending]) -> None:
        """Append every batch of ``group`` (each marked done, with its receipts or error)."""
        try:
            if len(group) > 1:
                try:
                    with self.ledger.write() as tx:
                        appended = [tx.append(p.drafts, signer=self.signer) for p in group]
                except LedgerError:
                    pass  # one batch refused: each is appended again on its own below
                else:
                    for p, events in zip(group, appended, strict=True):
                        p.receipts = [Receipt(e.seq, e.id, e.ts, e.hash) for e in events]
                    return
            for p in group:
                try:
                    events = self.ledger.append_many(p.drafts, signer=self.signer)
                    p.receipts = [Receipt(e.seq, e.id, e.ts, e.hash) for e in events]
                except BaseException as e:  # handed to the thread that appended the batch
                    p.error = e
        except BaseException as e:
            for p in group:
                if not p.receipts and p.error is None:
                    p.error = e
        finally:
            for p in group:
                p.done = True

    def gate(self, agent: str, tool: str, side_effect: str, run: str | None) -> Gated:
        return gate_and_record(self.ledger, self.append, agent, tool, side_effect, run)

    def lessons(self, agent: str) -> list[Lesson]:
        return lessons_of(current(self.ledger), agent)

    def close(self) -> None:
        self.ledger.close()


def gate_and_record(
    ledger: Ledger,
    append: Callable[[Sequence[Draft]], list[Receipt]],
    agent: str,
    tool: str,
    side_effect: str,
    run: str | None,
) -> Gated:
    """Judge from ``ledger``'s read models, and record a denial with ``append``."""
    decision = judge(current(ledger), agent, tool, side_effect, run)
    if decision.allowed:
        return decision, None
    try:
        receipts = append([denial_draft(decision, agent, tool, side_effect, run)])
    except LedgerError as e:
        return decision, e
    return replace(decision, guardrail_seq=receipts[-1].seq), None


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
    """Asks the service (``govledger serve``) with ``Authorization: Bearer <token>``: drafts
    go to ``POST /v1/events`` (SPEC §7) as a JSON array, one request per batch, committed all
    or nothing; the gate is ``POST /v1/gate``, lessons ``GET /v1/agents/{agent}/lessons``. The
    service signs with the key its token is bound to."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"service url {url!r}: expected http:// or https://")
        if not token:
            raise InputError("service token: empty")
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def _ask(self, method: str, path: str, body: Any = None) -> bytes:
        """The body of the service's answer; its refusal as the library's error."""
        headers = {"Authorization": f"Bearer {self._token}"}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: bytes = response.read()
                return answer
        except urllib.error.HTTPError as e:
            raise _Refused(e.code, e.reason, _json_or_none(e)) from e
        except (urllib.error.URLError, OSError) as e:
            raise StoreError(f"service at {self.url}: unreachable ({e})") from e

    def _json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise StoreError(f"service at {self.url}: answer is not JSON ({e})") from e

    def append(self, drafts: Sequence[Draft]) -> list[Receipt]:
        try:
            answer = self._json(self._ask("POST", "/v1/events", [_draft_json(d) for d in drafts]))
        except _Refused as e:
            raise e.error(self.url) from e
        try:
            return [
                Receipt(int(r["seq"]), str(r["id"]), str(r["ts"]), str(r["hash"])) for r in answer
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise StoreError(
                f"service at {self.url}: expected [{{seq, id, ts, hash}}], found {answer!r:.200}"
            ) from e

    def gate(self, agent: str, tool: str, side_effect: str, run: str | None) -> Gated:
        question = {"agent": agent, "tool": tool, "side_effect": side_effect, "run": run}
        try:
            answer = self._json(self._ask("POST", "/v1/gate", question))
        except _Refused as e:
            # A denial the service could not record: its decision, and why.
            if isinstance(e.body, dict) and "decision" in e.body:
                return self._decision(e.body["decision"]), e.error(self.url)
            raise e.error(self.url) from e
        return self._decision(answer), None

    def _decision(self, value: Any) -> Decision:
        try:
            return Decision.from_json(value)
        except InputError as e:
            raise StoreError(f"service at {self.url}: {e.message}") from e

    def lessons(self, agent: str) -> list[Lesson]:
        path = f"/v1/agents/{urllib.parse.quote(agent, safe='')}/lessons"
        try:
            raw = self._ask("GET", path)
        except _Refused as e:
            raise e.error(self.url) from e
        try:
            return [Lesson.from_json(self._json(line)) for line in raw.splitlines() if line]
        except InputError as e:
            raise StoreError(f"service at {self.url}: {e.message}") from e

    def close(self) -> None:
        pass


class _Refused(Exception):
    """An HTTP error answer, held until the caller decides which library error it is."""

    def __init__(self, status: int, reason: str, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason
        self.body = body

    def error(self, url: str) -> LedgerError:
        """The library error of the refusal: the class from the status, the message from
        the service's ``{"error": {"kind", "detail"}}``."""
        try:
            detail = str(self.body["error"]["detail"])
        except (KeyError, TypeError):
            detail = f"HTTP {self.status} {self.reason}"
        cls = _STATUS_ERRORS.get(self.status)
        if cls is None:
            return StoreError(f"service at {url}: {detail}")
        return cls(detail)


def _json_or_none(e: urllib.error.HTTPError) -> Any:
    try:
        return json.loads(e.read().decode("utf-8"))
    except (ValueError, OSError):
        return None


def _draft_json(d: Draft) -> dict[str, Any]:
    """A draft as an import line (SPEC §5): ``type`` and ``payload``, the rest when set."""
    out: dict[str, Any] = {"type": d.type, "payload": d.payload}
    for name in ("agent", "run", "actor", "id"):
        value = getattr(d, name)
        if value is not None:
            out[name] = value
    return out
