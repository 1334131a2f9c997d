"""Group commit: requests arriving together are appended in one transaction with one sync.

One writer task drains a queue of requests. It takes every request waiting (up to
``max_events`` events) and appends them, in arrival order, inside one write transaction of a
single writer thread: each request's events stay contiguous and in order, and the group costs
one commit (one fsync with ``synchronous = FULL``). Each request was validated before it was
queued; if the group still fails (a duplicate id across requests, a key revoked meanwhile),
the requests are appended again one by one, so one request's error fails no other. A request
is answered only once its transaction has committed: its events are durable.

When several server processes share one SQLite file (``govledger serve --workers N``), each
has its own writer, and ``exclusive`` (``ledger.service.workers.WriterLock``) makes them take
turns: a writer takes it before it forms its group (so the requests that arrive while another
process commits join the group) and releases it once the group has committed; a writer
waiting for another's commit wakes the moment it is released, instead of polling SQLite's lock
with sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from ledger.crypto.keyfiles import Signer
from ledger.errors import LedgerError, StoreError
from ledger.event.drafts import Prepared
from ledger.event.envelope import Event
from ledger.service import tokens
from ledger.store.sqlite import Ledger

MAX_GROUP_EVENTS = 5000
"""Events appended in one group at most (a larger request still goes whole, alone)."""


class ShuttingDown(StoreError):
    """The service is stopping and takes no more appends."""


@dataclass
class _Request:
    prepared: list[Prepared]
    signer: Signer
    future: asyncio.Future[list[Event]] = field(repr=False)
    token: str | None = None


Outcome = list[Event] | LedgerError


class Exclusive(Protocol):
    """A lock shared with other processes (``ledger.service.workers.WriterLock``)."""

    def acquire(self, blocking: bool = True) -> bool: ...

    def release(self) -> None: ...


class _Transaction(Protocol):
    """``Ledger.write()``'s transaction, as the writer uses it."""

    def append(self, drafts: Sequence[Prepared], *, signer: Signer) -> list[Event]: ...


class GroupCommitter:
    """The one writer of a service: ``await submit(prepared, signer)`` returns the appended
    events once durable, or raises the ``LedgerError`` that refused them."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_events: int = MAX_GROUP_EVENTS,
        on_group: Callable[[int, int, float], None] | None = None,
        exclusive: Exclusive | None = None,
    ) -> None:
        self.ledger = ledger
        self.exclusive = exclusive
        """Held while a group is formed and committed (a lock shared with other processes)."""
        self.max_events = max_events
        self.on_group = on_group
        """Told ``(requests, events, seconds)`` after each committed group."""
        self._queue: asyncio.Queue[_Request | None] = asyncio.Queue()
        # One thread: the writer's connection and transaction stay on it.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="govledger-writer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(
        self, prepared: list[Prepared], signer: Signer, token: str | None = None
    ) -> list[Event]:
        """Append ``prepared`` signed by ``signer``; with ``token`` (a token's name), only if
        that token is still unrevoked when the group is committed."""
        if self._closing:
            raise ShuttingDown("the service is shutting down; append again later")
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Request(prepared, signer, future, token))
        return await future

    async def close(self) -> None:
        """Stop taking requests; commit (or fail) whole every request already queued."""
        self._closing = True
        await self._queue.put(None)
        if self._task is not None:
            await self._task
        self._thread.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                break
            started = time.perf_counter()
            if self.exclusive is not None:
                try:
                    await self._take_turn()
                except OSError as e:
                    if not first.future.done():
                        first.future.set_exception(
                            StoreError(f"the writers' lock could not be taken ({e.strerror})")
                        )
                    continue
            group, events = [first], len(first.prepared)
            while events < self.max_events:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
                events += len(item.prepared)
            try:
                outcomes = await loop.run_in_executor(self._thread, self._commit, group)
            except BaseException as e:  # a bug, not a refusal: every waiter hears of it
                for r in group:
                    if not r.future.done():
                        r.future.set_exception(e)
                if not isinstance(e, Exception):
                    raise
                continue
            if self.on_group is not None:
                self.on_group(len(group), events, time.perf_counter() - started)
            for r, outcome in zip(group, outcomes, strict=True):
                if r.future.done():  # the client went away; its events are committed anyway
                    continue
                if isinstance(outcome, LedgerError):
                    r.future.set_exception(outcome)
                else:
                    r.future.set_result(outcome)

    async def _take_turn(self) -> None:
        """Take ``exclusive``: at once when it is free, else in the writer's thread once
        another process's writer gives it back (the event loop serves meanwhile)."""
        assert self.exclusive is not None
        exclusive = self.exclusive
        if exclusive.acquire(blocking=False):
            return
        pending = self._thread.submit(exclusive.acquire)
        try:
            await asyncio.wrap_future(pending)
        except asyncio.CancelledError:
            # The lock is taken anyway, later: give it back then.
            def give_back(done: Future[bool]) -> None:
                if done.exception() is None:
                    exclusive.release()

            pending.add_done_callback(give_back)
            raise

    def _commit(self, group: list[_Request]) -> list[Outcome]:
        try:
            return self._commit_group(group)
        finally:
            if self.exclusive is not None:
                self.exclusive.release()

    def _commit_group(self, group: list[_Request]) -> list[Outcome]:
        """Append the group in one transaction; on a refusal, each request alone (so the
        refusal names the request's own events, and fails no other)."""
        try:
            with self.ledger.write() as tx:
                return self._append(tx, group)
        except LedgerError as e:
            if len(group) == 1:
                return [e]
        out: list[Outcome] = []
        for r in group:
            try:
                with self.ledger.write() as tx:
                    out.append(self._append(tx, [r])[0])
            except LedgerError as e:
                out.append(e)
        return out

    def _append(self, tx: _Transaction, group: list[_Request]) -> list[Outcome]:
        """Inside ``tx``: refuse the requests whose token was revoked since they were
        accepted, append the others."""
        names = {r.token for r in group if r.token is not None}
        gone = tokens.revoked_among(self.ledger, names) if names else set()
        appended = iter(_append_group(tx, [r for r in group if r.token not in gone]))
        return [
            tokens.Revoked("unknown or revoked token") if r.token in gone else next(appended)
            for r in group
        ]


def _append_group(tx: _Transaction, group: list[_Request]) -> list[Outcome]:
    """Append the group's requests in order inside ``tx``; consecutive requests signed by the
    same key are chained as one batch (one pass of the write path instead of one per
    request: the per-append work of finding the tip, the key and the Merkle nodes is paid
    once), then each request gets its own events back."""
    out: list[Outcome] = []
    i = 0
    while i < len(group):
        signer = group[i].signer
        j = i + 1
        while j < len(group) and _same_key(group[j].signer, signer):
            j += 1
        run = group[i:j]
        events = tx.append([p for r in run for p in r.prepared], signer=signer)
        start = 0
        for r in run:
            out.append(events[start : start + len(r.prepared)])
            start += len(r.prepared)
        i = j
    return out


def _same_key(a: Signer, b: Signer) -> bool:
    return a is b or (a.name == b.name and a.key_id == b.key_id)
