"""Ed25519 batches on the machine's other cores, for the append and verify hot paths.

Signatures do not depend on each other (only hashes are chained), so large batches are signed
or verified in worker processes (``ledger.crypto.pool_worker``) while the main process validates,
canonicalizes, chains and writes. Processes, not threads: with threads every signature call
has to win the GIL back from the main thread, and those hand-offs cost more than the
signatures. Workers are plain ``python -m ledger.crypto.pool_worker`` children talking over pipes
(no fork of the caller, no re-import of its ``__main__``), started on first use and ended at
exit. Secret keys travel only over the pipe to these children; nothing is written or logged.
Drafts and payloads never leave the process: only digests, signatures and public keys do.

Everything about the processes lives in one :class:`WorkerPool`; callers see two streams:

- ``pool.signing(secret_key, total)``: ``add`` each digest, then ``signatures()`` yields
  the signatures in order, a list at a time;
- ``pool.verifying(total)``: ``add`` lists of ``(tag, public key, signature, digest)``, and
  ``failed()`` returns the tags whose signature does not verify.

Both decide on their own whether the batch is large enough for the workers. :func:`pool`
returns the process's shared pool (``GOVLEDGER_WORKERS`` processes).

A worker failure stays with that worker: one that dies, hangs past the pool's timeout or
answers something that is not its answer to the request is killed and dropped, the requests
it held are done in-process by the batches they belong to, and the other workers and
batches go on. Answers are checked: each is framed with the request's id and a BLAKE2b of
its body; a sampled signature of every signed answer is verified here; a verify answer
must hold only 0/1 verdicts, must reject a deliberately broken record added to the request,
and every "invalid" verdict is confirmed here. An answer that fails a check is redone
in-process, so neither an unsigned event nor an unverified signature ever passes.
"""

from __future__ import annotations

import atexit
import itertools
import os
import random
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.crypto.pool_worker import answer
from ledger.crypto.signing import check_event_signature, sign_event
from ledger.settings import env_int

MIN_SIGN = env_int("GOVLEDGER_PARALLEL_MIN", 64)
"""Append batches smaller than this are signed in-process (at 100 events, signing in the
workers while the batch is chained already pays)."""
MIN_VERIFY = max(MIN_SIGN, 512)
"""Logs shorter than this are verified in-process: the workers' start-up would not pay."""
CHUNK = 256
"""Items per request (at most). Workers write their answers without blocking
(``ledger.crypto.pool_worker``), so no request or answer size can deadlock the two sides."""
SIGN_IN_FLIGHT = 2
VERIFY_IN_FLIGHT = 4
"""Verify answers are one byte per signature, so more requests can wait on a worker."""
TIMEOUT = 30.0
"""Seconds a worker may take to take a request or to answer before it counts as hung."""

Item = tuple[Any, bytes, bytes, bytes]
"""A signature to check: (tag, public key, signature, digest)."""


def _size_from_env() -> int:
    """Worker processes (env ``GOVLEDGER_WORKERS``, default one per CPU, at most 8)."""
    return max(0, min(env_int("GOVLEDGER_WORKERS", os.cpu_count() or 1), 8))


class _WorkerFailed(Exception):
    """A worker died, hung or answered something that is not its answer."""


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    waiting: deque[_Job] = field(default_factory=deque)


@dataclass(eq=False)
class _Job:
    op: bytes
    payload: Any
    request_id: bytes
    answer_size: int
    worker: _Worker | None = None
    """The worker holding the request; None once it is to be done in-process."""
    result: bytes | None = None
    answered_by: _Worker | None = None


class WorkerPool:
    """Worker processes signing and verifying Ed25519 batches for every thread of a process.

    ``size`` below 2 keeps everything in-process. ``command`` starts one worker (default
    ``python -m ledger.crypto.pool_worker``); ``timeout`` is how long one may take to accept a
    request or to answer before it is killed and its requests done in-process.
    """

    def __init__(
        self, size: int, *, command: Sequence[str] | None = None, timeout: float = TIMEOUT
    ) -> None:
        self.size = size
        self.command = list(command or [sys.executable, "-m", "ledger.crypto.pool_worker"])
        self.timeout = timeout
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        """The workers' pipes are shared by the process's threads: writing a request and
        queueing its job, and reading an answer and taking its job off the queue, happen
        under this lock, so each answer reaches the job it belongs to."""
        _pools.add(self)

    @property
    def enabled(self) -> bool:
        return self.size >= 2

    def signing(self, secret_key: bytes, total: int) -> Signing:
        """A signing stream for a batch of ``total`` digests."""
        return Signing(self if self.enabled and total >= MIN_SIGN else None, secret_key, total)

    def verifying(self, total: int | None) -> Verifying:
        """A verifying stream for about ``total`` signatures (None: not known, maybe many)."""
        large = total is None or total >= MIN_VERIFY
        return Verifying(self if self.enabled and large else None)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._workers]

    def close(self) -> None:
        """End the workers (requests they still hold are done in-process by their batches)."""
        with self._lock:
            while self._workers:
                w = self._workers.pop()
                self._release_jobs(w)
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

    # --- inside the pool -----------------------------------------------------------------

    def _start(self) -> bool:
        """Top the pool up to ``size`` workers (replacing dropped ones); False if none runs."""
        with self._lock:
            while len(self._workers) < self.size:
                try:
                    proc = subprocess.Popen(
                        self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
                    )
                except OSError:
                    break
                assert proc.stdin is not None
                os.set_blocking(proc.stdin.fileno(), False)
                self._workers.append(_Worker(proc))
            return bool(self._workers)

    def _forget(self) -> None:
        """In a forked child: the workers, their pipes and the lock's state are the parent's.
        The child closes its copies of the pipes (the parent's workers still see end of input
        when the parent stops) and starts workers of its own when it needs them."""
        self._lock = threading.RLock()
        for w in self._workers:
            self._release_jobs(w)
            for stream in (w.proc.stdin, w.proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        self._workers.clear()

    @staticmethod
    def _release_jobs(w: _Worker) -> None:
        for job in w.waiting:
            job.worker = None
        w.waiting.clear()

    def _drop(self, w: _Worker) -> None:
        """Kill a failed worker; the requests it held are done in-process by their owners."""
        with self._lock:
            if w in self._workers:
                self._workers.remove(w)
            self._release_jobs(w)
            try:
                w.proc.kill()
                w.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            for stream in (w.proc.stdin, w.proc.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass

    def _submit(self, op: bytes, payload: Any, body: bytes, n: int, answer_size: int) -> _Job:
        job = _Job(op, payload, next(self._ids).to_bytes(8, "big")[-4:], answer_size)
        frame = op + struct.pack(">I", n) + job.request_id + body
        limit = VERIFY_IN_FLIGHT if op == b"V" else SIGN_IN_FLIGHT
        with self._lock:
            # Answers already written are collected first, then the request goes to the worker
            # with the fewest waiting: none sits idle while another has a queue.
            self._collect_answered()
            while self._workers:
                w = min(self._workers, key=lambda x: len(x.waiting))
                while w.waiting and len(w.waiting) >= limit:
                    self._receive_oldest(w)
                if w not in self._workers:
                    continue
                try:
                    self._write(w, frame)
                except (OSError, ValueError, _WorkerFailed):
                    self._drop(w)
                    continue
                job.worker = w
                w.waiting.append(job)
                break
        return job

    def _await(self, job: _Job) -> bytes | None:
        """The worker's checked-frame answer to ``job``, or None: do it in-process."""
        with self._lock:
            while job.result is None and job.worker is not None:
                self._receive_oldest(job.worker)
        return job.result

    def _reject(self, job: _Job) -> None:
        """An answer that failed the caller's checks: its worker is no longer trusted."""
        if job.answered_by is not None:
            self._drop(job.answered_by)
        job.result = None

    def _collect_answered(self) -> None:
        """Read the answers the workers have already written, without waiting for others."""
        for w in list(self._workers):
            if not w.waiting or w not in self._workers:
                continue
            try:
                assert w.proc.stdout is not None
                ready = select.select([w.proc.stdout.fileno()], [], [], 0)[0]
            except (OSError, ValueError):
                self._drop(w)
                continue
            if ready:
                self._receive_oldest(w)

    def _receive_oldest(self, w: _Worker) -> None:
        """Read the answer to ``w``'s oldest request into it, or drop ``w`` if it failed."""
        job = w.waiting[0]
        try:
            framed = self._read(w, 4 + job.answer_size + 16)
        except (OSError, ValueError, _WorkerFailed):
            self._drop(w)
            return
        body = framed[4:-16]
        if answer(job.request_id, body) != framed:
            self._drop(w)  # not its answer to this request: nothing it says is taken
            return
        w.waiting.popleft()
        job.worker, job.result, job.answered_by = None, body, w

    def _write(self, w: _Worker, frame: bytes) -> None:
        """All of ``frame`` to the worker, within the timeout."""
        assert w.proc.stdin is not None
        fd = w.proc.stdin.fileno()
        view = memoryview(frame)
        deadline = time.monotonic() + self.timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise _WorkerFailed("the worker takes no requests")
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                pass

    def _read(self, w: _Worker, n: int) -> bytes:
        """``n`` bytes from the worker, within the timeout."""
        assert w.proc.stdout is not None
        fd = w.proc.stdout.fileno()
        buf = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _WorkerFailed("the worker does not answer")
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise _WorkerFailed("the worker closed its pipe")
            buf += chunk
        return bytes(buf)


class Signing:
    """Digests of one batch in, their signatures out in the same order."""

    def __init__(self, pool: WorkerPool | None, secret_key: bytes, total: int) -> None:
        self._pool = pool if pool is not None and pool._start() else None
        size = pool.size if pool is not None else 1
        # Chunks small enough that every worker gets some of this batch, large enough to pay
        # the round trip.
        self._chunk = max(16, min(CHUNK, total // (2 * max(1, size))))
        self._secret = secret_key
        self._total = total
        self._added = 0
        self._pending: list[bytes] = []
        self._jobs: deque[_Job] = deque()

    def add(self, digest: bytes) -> None:
        self._pending.append(digest)
        self._added += 1
        if self._pool is not None and (
            len(self._pending) >= self._chunk or self._added == self._total
        ):
            self._send()

    def _send(self) -> None:
        assert self._pool is not None
        digests, self._pending = self._pending, []
        body = self._secret + b"".join(digests)
        self._jobs.append(self._pool._submit(b"S", digests, body, len(digests), 64 * len(digests)))

    def signatures(self) -> Iterator[list[bytes]]:
        """The signatures of every digest added, in order, a list at a time as they come."""
        if self._pool is not None and self._pending:
            self._send()
        while self._jobs:
            yield self._result(self._jobs.popleft())
        if self._pending:
            digests, self._pending = self._pending, []
            yield [sign_event(self._secret, d) for d in digests]

    def _result(self, job: _Job) -> list[bytes]:
        assert self._pool is not None
        digests: list[bytes] = job.payload
        raw = self._pool._await(job)
        if raw is not None:
            sigs = [raw[64 * i : 64 * (i + 1)] for i in range(len(digests))]
            # One signature of each answer is checked here (all of them would cost more than
            # signing them here): a worker signing garbage or with another key is caught.
            i = random.randrange(len(digests))
            if check_event_signature(self._secret[32:], sigs[i], digests[i]):
                return sigs
            self._pool._reject(job)
        return [sign_event(self._secret, d) for d in digests]


class Verifying:
    """Signatures in, the tags of those that do not verify out."""

    def __init__(self, pool: WorkerPool | None) -> None:
        self._pool = pool if pool is not None and pool._start() else None
        self._jobs: deque[_Job] = deque()
        self._failed: list[Any] = []

    def add(self, items: Sequence[Item]) -> None:
        # A record whose parts are not 32/64/32 bytes would shift every record after it in the
        # worker's fixed-size frame: it is failed here and never sent.
        recs = []
        for r in items:
            if len(r[1]) == 32 and len(r[2]) == 64 and len(r[3]) == 32:
                recs.append(r)
            else:
                self._failed.append(r[0])
        if not recs:
            return
        if self._pool is None:
            self._failed += _failing(recs)
            return
        # A copy of the first record with a broken signature goes last: a worker that calls
        # it valid is not checking.
        _, first_pub, first_sig, first_digest = recs[0]
        canary = first_pub + bytes([first_sig[0] ^ 1]) + first_sig[1:] + first_digest
        body = b"".join(pub + sig + digest for _, pub, sig, digest in recs) + canary
        self._jobs.append(self._pool._submit(b"V", recs, body, len(recs) + 1, len(recs) + 1))

    def failed(self, *, finish: bool = False) -> list[Any]:
        """Tags of the signatures found bad so far (each reported once). Without ``finish``
        the newest requests may stay with the workers, so they stay busy."""
        keep = 0 if finish or self._pool is None else VERIFY_IN_FLIGHT * self._pool.size
        while len(self._jobs) > keep:
            self._failed += self._result(self._jobs.popleft())
        out, self._failed = self._failed, []
        return out

    def _result(self, job: _Job) -> list[Any]:
        assert self._pool is not None
        recs: list[Item] = job.payload
        raw = self._pool._await(job)
        if raw is not None and raw[-1] == 0 and not raw.translate(None, b"\x00\x01"):
            bad = [r for r, ok in zip(recs, raw, strict=False) if not ok]
            # "Invalid" is confirmed here: a worker rejecting good signatures is not trusted
            # with the rest of its answer either.
            confirmed = _failing(bad)
            if len(confirmed) == len(bad):
                return confirmed
        if raw is not None:
            self._pool._reject(job)
        return _failing(recs)


def _failing(recs: Sequence[Item]) -> list[Any]:
    return [tag for tag, pub, sig, d in recs if not check_event_signature(pub, sig, d)]


_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()
_default: WorkerPool | None = None
_default_lock = threading.Lock()


def pool() -> WorkerPool:
    """The process's shared pool (``GOVLEDGER_WORKERS`` workers, started on first use)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = WorkerPool(_size_from_env())
    return _default


def shutdown() -> None:
    """End every pool's workers (at exit; they start again on next use)."""
    for p in list(_pools):
        p.close()


def _forget_parent_workers() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for p in list(_pools):
        p._forget()


os.register_at_fork(after_in_child=_forget_parent_workers)
atexit.register(shutdown)
