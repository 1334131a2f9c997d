"""The recording API: what an agent runtime imports to write the log (SPEC §6).

``Recorder.open(db, signer=...)`` records into a ledger it opens (a SQLite file or a
``postgresql://`` database), ``Recorder.connect(url, token=...)`` through the service; both are
thread-safe, so one recorder serves every thread and task of a runtime. Runs (``run``, ``arun``) record the lifecycle and runtime events; the
gate (``check_tool``) and correction memory (``lessons``) read the read models caught up to the
head of the log: the local ledger's, or the service's (``POST /v1/gate``, ``GET
/v1/agents/{agent}/lessons``), with the same answers.

Failure policy (``on_error``), for a ``LedgerError`` met while recording (a refused event, a
locked or unreachable store):

- ``"closed"``: raise it: the action being recorded must not go on unrecorded;
- ``"open"``: log it (logger ``ledger.recording``, level ERROR) and go on;
- ``"auto"`` (default): closed for the events of a tool call whose side effect is ``write``,
  ``delete``, ``payment``, ``execute`` or ``network`` (and the gate's denial record for such a
  call), open for everything else.

Errors in the caller's own values (a float where an integer is due, an unknown decision) are
``LedgerError`` too and follow the same policy; a recording error met while the run's body is
already raising is logged and noted on that exception, never raised in its place.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal, ParamSpec, TypeVar

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.errors import InputError, LedgerError, UnauthorizedWrite
from ledger.event.clock import uuid7s
from ledger.event.drafts import Draft
from ledger.recording.gate import Decision
from ledger.recording.lessons import Lesson
from ledger.recording.run import AsyncRun, Risk, Run
from ledger.recording.transport import HttpTransport, LocalTransport, Receipt, Transport
from ledger.store import Ledger, open_store

OnError = Literal["closed", "open", "auto"]
CLOSED_SIDE_EFFECTS: Final = frozenset({"write", "delete", "payment", "execute", "network"})
"""Side effects whose recording failures abort the action under ``on_error="auto"``."""

log = logging.getLogger("ledger.recording")

P = ParamSpec("P")
T = TypeVar("T")


class Recorder:
    """Records runs into one log through a ``Transport``. Use ``open`` or ``connect``."""

    def __init__(
        self,
        transport: Transport,
        *,
        ledger: Ledger | None = None,
        on_error: OnError = "auto",
        threads: int = 8,
    ) -> None:
        if on_error not in ("closed", "open", "auto"):
            raise InputError(f"on_error: expected closed, open or auto, found {on_error!r}")
        self.transport = transport
        self.ledger = ledger
        """The local ledger (None through the service)."""
        self.on_error: OnError = on_error
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    # --- opening --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        db: str | Path,
        *,
        keys: str | Path | None = None,
        signer: str,
        on_error: OnError = "auto",
        threads: int = 8,
    ) -> Recorder:
        """A recorder appending to the ledger ``db`` (a SQLite file, or a ``postgresql://``
        URL), signing with the key named
        ``signer`` from the key directory ``keys`` (default: ``GOVLEDGER_KEYS``, else
        ``~/.govledger/keys``). The key must be a registered, unrevoked recorder or agent key
        (``UnauthorizedWrite``, exit 2); a missing ledger or key file is exit 3."""
        key = KeyRing(keys).load(signer)
        ledger = open_store(str(db))
        try:
            _check_signer(ledger, key)
            return cls(
                LocalTransport(ledger, key), ledger=ledger, on_error=on_error, threads=threads
            )
        except BaseException:
            ledger.close()
            raise

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        token: str,
        on_error: OnError = "auto",
        timeout: float = 30.0,
        threads: int = 8,
    ) -> Recorder:
        """A recorder posting to the service at ``url`` (``govledger serve``) with a bearer
        ``token``; the service signs with the key the token is bound to, and answers the gate
        and lessons from its read models (a token bound to an agent asks only about it)."""
        return cls(HttpTransport(url, token, timeout=timeout), on_error=on_error, threads=threads)

    def close(self) -> None:
        """Finish the recorder's threads and close its transport."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self.transport.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- recording ------------------------------------------------------------------------

    def closes_on(self, side_effect: str | None) -> bool:
        """Whether a recording failure for an event of ``side_effect`` raises (the policy)."""
        if self.on_error == "auto":
            return side_effect in CLOSED_SIDE_EFFECTS
        return self.on_error == "closed"

    def record(
        self,
        drafts: Sequence[Draft],
        *,
        side_effect: str | None = None,
        what: str = "event",
        pending: BaseException | None = None,
    ) -> list[Receipt] | None:
        """Append ``drafts`` atomically; the receipts once durable. On a ``LedgerError``, the
        failure policy decides: raise it, or log it and return None. With ``pending`` (an
        exception already on its way) the error is logged and noted on it instead."""
        try:
            return self.transport.append(drafts)
        except LedgerError as e:
            if pending is not None:
                log.error("%s not recorded: %s", what, e)
                pending.add_note(f"govledger: {what} not recorded: {e}")
                return None
            if self.closes_on(side_effect):
                raise
            log.error("%s not recorded (on_error=%s): %s", what, self.on_error, e)
            return None

    def run(
        self,
        *,
        agent: str,
        objective: str,
        risk: Risk = "low",
        auto_approve: bool = True,
        run: str | None = None,
        user: str | None = None,
        actor: str | None = None,
    ) -> Run:
        """A run to record: ``with recorder.run(...) as run:`` (see ``Run``). ``run`` is the
        run id (default: ``run-`` and a UUIDv7); ``user`` defaults to ``actor``, else
        ``"unknown"``; ``actor`` is the envelope's actor of ``run.submitted``."""
        return Run(
            self,
            agent=agent,
            objective=objective,
            risk=risk,
            auto_approve=auto_approve,
            run=run or f"run-{uuid7s(1)[0]}",
            user=user or actor or "unknown",
            actor=actor,
        )

    def arun(
        self,
        *,
        agent: str,
        objective: str,
        risk: Risk = "low",
        auto_approve: bool = True,
        run: str | None = None,
        user: str | None = None,
        actor: str | None = None,
    ) -> AsyncRun:
        """``run`` for asyncio: ``async with recorder.arun(...) as run:``."""
        return AsyncRun(
            self.run(
                agent=agent,
                objective=objective,
                risk=risk,
                auto_approve=auto_approve,
                run=run,
                user=user,
                actor=actor,
            )
        )

    def feedback(self, agent: str, score_bp: int, by: str, *, run: str | None = None) -> int | None:
        """Record ``feedback.quality`` for ``agent`` (on ``run`` if given)."""
        draft = Draft("feedback.quality", {"score_bp": score_bp, "by": by}, agent=agent, run=run)
        return _last(self.record([draft], what="feedback.quality"))

    def correction(
        self, agent: str, text: str, by: str, *, topic: str | None = None, run: str | None = None
    ) -> int | None:
        """Record ``correction.recorded`` for ``agent`` (on ``run`` if given)."""
        payload: dict[str, Any] = {"text": text, "by": by}
        if topic is not None:
            payload["topic"] = topic
        draft = Draft("correction.recorded", payload, agent=agent, run=run)
        return _last(self.record([draft], what="correction.recorded"))

    async def in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in the recorder's threads, awaited (the loop goes on)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), partial(fn, *args, **kwargs))

    def _pool(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._threads, "govledger-recorder")
            return self._executor

    # --- reading: the gate and correction memory ------------------------------------------

    def check_tool(
        self, agent: str, tool: str, side_effect: str, run: str | None = None
    ) -> Decision:
        """May ``agent`` call ``tool`` (of class ``side_effect``) now, in ``run``? Answered
        from the read models caught up to the head (``gate``). A denial is recorded as
        ``guardrail.triggered`` (kind ``forbidden_action``, else ``permission_denied``;
        severity ``warning``) before this returns; the caller must not run the tool. A denial
        that could not be recorded follows the failure policy (raised, or logged and returned
        with ``guardrail_seq`` None)."""
        decision, unrecorded = self.transport.gate(agent, tool, side_effect, run)
        if unrecorded is not None:
            if self.closes_on(side_effect):
                raise unrecorded
            log.error("gate denial not recorded (on_error=%s): %s", self.on_error, unrecorded)
        return decision

    def lessons(self, agent: str) -> list[Lesson]:
        """The emerged correction patterns of ``agent`` (name, count, examples and the seqs
        they rest on), for the runtime to put into the agent's instructions."""
        return self.transport.lessons(agent)


def _last(receipts: list[Receipt] | None) -> int | None:
    return receipts[-1].seq if receipts else None


def _check_signer(ledger: Ledger, key: Signer) -> None:
    """Refuse a signer that cannot record runs: unregistered, revoked, or a governor."""
    for k in ledger.keys():
        if k["key_id"] == key.key_id:
            if k["revoked_seq"] is not None:
                raise UnauthorizedWrite(f"key {key.name} was revoked at seq {k['revoked_seq']}")
            if k["role"] == "governor":
                raise UnauthorizedWrite(
                    f"key {key.name} is a governor key; runs are recorded by recorder or agent keys"
                )
            return
    raise UnauthorizedWrite(f"key {key.name} ({key.key_id}) is not registered in this ledger")
