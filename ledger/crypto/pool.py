"""Ed25519 batches on the machine's other cores, for the append and verify hot paths.

Signatures do not depend on each other (only hashes are chained), so large batches are signed
or verified in worker processes (``ledger.crypto.pool_worker``) while the main process validates,
canonicalizes, chains and writes. Processes, not threads: with threads every signature call
has to win the GIL back from the main thread, and those hand-offs cost more than the
signatures. Workers are plain ``python -m ledger.crypto.pool_worker`` children talking over pipes
(no fork of the caller, no re-import of its ``__main__``), started on first use and ended at
exit. Secret keys travel only over the pipe to these children; nothing is written or logged.
Drafts and payloads never leave the process: only digests, signatures and public keys do.

Small batches stay in-process. A worker that fails is replaced by in-process work: signing
and verification never depend on a worker being alive (verification fails closed).
"""

from __future__ import annotations

import atexit
import functools
import os
import select
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ledger.crypto.signing import check_event_signature, sign_event

MIN_PARALLEL = int(os.environ.get("GOVLEDGER_PARALLEL_MIN", "64"))
"""Append batches smaller than this are signed in-process (at 100 events, signing in the
workers while the batch is chained already pays)."""
MIN_PARALLEL_VERIFY = max(MIN_PARALLEL, 512)
"""Logs shorter than this are verified in-process: the workers' start-up would not pay."""
WORKERS = max(0, min(int(os.environ.get("GOVLEDGER_WORKERS", str(os.cpu_count() or 1))), 8))
"""Worker processes (env ``GOVLEDGER_WORKERS``; below 2 CPUs nothing runs in parallel)."""
CHUNK = 256
"""Items per request (at most). Workers write their answers without blocking
(``ledger.crypto.pool_worker``), so no request or answer size can deadlock the two sides."""
IN_FLIGHT = 2
VERIFY_IN_FLIGHT = 4
"""Verify answers are one byte per signature, so more requests can wait on a worker."""


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    waiting: deque[_Job] = field(default_factory=deque)


_workers: list[_Worker] = []
_lock = threading.RLock()
"""The workers' pipes are the process's, shared by its threads (a verify in one thread, an
append in another): writing a request and queueing its job, and reading an answer and taking
its job off the queue, happen under this lock, so each answer reaches the job it belongs to."""

_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(f: _F) -> _F:
    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        with _lock:  # the module's lock at call time (a forked child gets a new one)
            return f(*args, **kwargs)

    return run  # type: ignore[return-value]


def enabled() -> bool:
    return WORKERS >= 2


@_locked
def _start() -> list[_Worker]:
    if not _workers:
        for _ in range(WORKERS):
            proc = subprocess.Popen(
                [sys.executable, "-m", "ledger.crypto.pool_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
            _workers.append(_Worker(proc))
    return _workers


def _forget_parent_workers() -> None:
    """In a forked child: the workers, their pipes and the lock's state are the parent's. The
    child closes its copies of the pipes (the parent's workers still see end of input when the
    parent stops) and starts workers of its own when it needs them."""
    global _lock
    _lock = threading.RLock()
    for w in _workers:
        for stream in (w.proc.stdin, w.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
    _workers.clear()


os.register_at_fork(after_in_child=_forget_parent_workers)


@_locked
def shutdown() -> None:
    while _workers:
        w = _workers.pop()
        try:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
            w.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            w.proc.kill()
            w.proc.wait()
        finally:
            if w.proc.stdout is not None:
                w.proc.stdout.close()


atexit.register(shutdown)


def _write(w: _Worker, frame: bytes) -> None:
    """All of ``frame`` to the worker (a raw pipe write may take only part of it)."""
    assert w.proc.stdin is not None
    view = memoryview(frame)
    while view:
        written = w.proc.stdin.write(view)
        if not written:
            raise OSError("worker closed its pipe")
        view = view[written:]


def _read(w: _Worker, n: int) -> bytes:
    assert w.proc.stdout is not None
    buf = b""
    while len(buf) < n:
        chunk = w.proc.stdout.read(n - len(buf))
        if not chunk:
            raise OSError("worker closed its pipe")
        buf += chunk
    return buf


@dataclass
class _Job:
    op: str
    payload: Any
    worker: _Worker | None
    result: list[Any] | None = None


class Pipeline:
    """Requests spread over the workers; ``results()`` returns them in submission order.

    A request goes to the worker with the fewest unanswered; at most ``IN_FLIGHT`` signing
    requests (``VERIFY_IN_FLIGHT`` verify requests) wait on one worker: before one more is
    sent, the oldest answer of that worker is read and kept.
    """

    def __init__(self) -> None:
        self.workers = _start()
        self.jobs: deque[_Job] = deque()
        self.broken = False

    def sign(self, secret_key: bytes, digests: Sequence[bytes]) -> None:
        items = list(digests)
        frame = b"S" + struct.pack(">I", len(items)) + secret_key + b"".join(items)
        self._submit(_Job("S", (secret_key, items), None), frame)

    def check(self, items: Sequence[tuple[int, bytes, bytes, bytes]]) -> None:
        recs = list(items)
        body = b"".join(pub + sig + digest for _, pub, sig, digest in recs)
        self._submit(_Job("V", recs, None), b"V" + struct.pack(">I", len(recs)) + body)

    def wait(self, job: _Job) -> list[Any]:
        """The result of one request (others answered before it are kept for later)."""
        result = job.result if job.result is not None else self._finish(job)
        job.payload = None
        return result

    def results(self, keep: int = 0) -> list[list[Any]]:
        """Results in submission order (signature lists, or lists of failing seqs), leaving
        the newest ``keep`` requests pending so the workers stay busy."""
        out = []
        while len(self.jobs) > keep:
            out.append(self.wait(self.jobs.popleft()))
        return out

    def each(self) -> Iterator[list[Any]]:
        """Every result in submission order, each as soon as it is in (``results`` waits for
        all of them)."""
        while self.jobs:
            yield self.wait(self.jobs.popleft())

    @_locked
    def _submit(self, job: _Job, frame: bytes) -> None:
        if not self.broken:
            # Answers already written are collected first, then the request goes to the worker
            # with the fewest waiting: none sits idle while another has a queue.
            self._collect_answered()
        if not self.broken:
            w = min(self.workers, key=lambda x: len(x.waiting))
            limit = VERIFY_IN_FLIGHT if job.op == "V" else IN_FLIGHT
            while len(w.waiting) >= limit:
                self._receive_oldest(w)
            try:
                _write(w, frame)
                job.worker = w
                w.waiting.append(job)
            except OSError:
                self._break()
        self.jobs.append(job)

    @_locked
    def _collect_answered(self) -> None:
        """Read the answers the workers have already written, without waiting for others."""
        try:
            streams = [w.proc.stdout for w in self.workers if w.waiting and w.proc.stdout]
            ready = select.select(streams, [], [], 0)[0] if streams else []
        except (OSError, ValueError):
            self._break()
            return
        for w in self.workers:
            if w.proc.stdout in ready and w.waiting:
                self._receive_oldest(w)

    @_locked
    def _finish(self, job: _Job) -> list[Any]:
        w = job.worker
        if w is not None and not self.broken:
            while w.waiting and self._receive_oldest(w) is not job:
                pass
        return job.result if job.result is not None else _local(job)

    @_locked
    def _receive_oldest(self, w: _Worker) -> _Job:
        """Read the answer to ``w``'s oldest request into it (or do it here if ``w`` failed)."""
        job = w.waiting.popleft()
        job.result = self._receive(job, w)
        return job

    def _receive(self, job: _Job, w: _Worker) -> list[Any]:
        n = len(job.payload[1]) if job.op == "S" else len(job.payload)
        try:
            if self.broken:  # its pipes are closed: the rest of its queue is done here
                raise OSError("the workers were stopped")
            raw = _read(w, 64 * n if job.op == "S" else n)
        except OSError:
            self._break()
            return _local(job)
        if job.op == "S":
            return [raw[64 * i : 64 * (i + 1)] for i in range(n)]
        return [r[0] for r, ok in zip(job.payload, raw, strict=True) if not ok]

    def _break(self) -> None:
        self.broken = True
        shutdown()


def _local(job: _Job) -> list[Any]:
    """The same work in-process: used when a worker fails, never skipped."""
    if job.op == "S":
        secret_key, digests = job.payload
        return [sign_event(secret_key, d) for d in digests]
    return [seq for seq, pub, sig, d in job.payload if not check_event_signature(pub, sig, d)]
