"""Several server processes for one ledger: ``govledger serve --workers N``.

One event-loop process is one core's worth of work. With ``--workers N`` the parent process
makes the listening socket and starts N server processes (``python -c``, not a fork: the
parent's threads and connections are not copied), each serving the same application on that
inherited socket, with its own store connections and its own group-commit writer. The kernel
hands each new connection to one of them. The parent serves nothing; it

- waits for every process to be ready (its writer started) before printing the address; a
  process that stops before it is ready stops the service (``ServerFailed``, exit 3);
- forwards SIGINT and SIGTERM to them as SIGTERM (a second signal as SIGINT, which stops at
  once): each finishes its requests in flight and commits or fails whole the group it holds,
  and the parent ends as they do, with the signal it was sent;
- replaces a process that dies while serving (one line on stderr; the requests it held get
  no answer, their events are committed whole or not at all);
- is watched by them: when the parent dies (SIGKILL), their standard input closes and each
  stops gracefully.

Writers of different processes take turns on a SQLite file with ``WriterLock``, a blocking
``flock`` of a file beside the ledger (``<db>.serve.lock``), held around each write
transaction: the next writer wakes when the lock is released, where SQLite's busy handler
would sleep and poll. Other writers of the file (the CLI) still meet SQLite's own lock. On
PostgreSQL the head row's lock already orders appenders; no file is used.

The processes' counters live in one shared mapping (``ledger.service.metrics``): ``/metrics``
from any process sums them all.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

from ledger.errors import EnvironmentProblem, LedgerError
from ledger.service.metrics import Metrics, shared_file

LOCK_SUFFIX = ".serve.lock"
"""The writers' lock file is the SQLite file's path with this suffix."""


class ServerFailed(EnvironmentProblem):
    """A server process stopped before it was ready."""


class WriterLock:
    """An exclusive ``flock`` of ``path`` (created if missing); ``acquire()`` waits as long as
    another process holds it. The kernel releases it when its holder dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise EnvironmentProblem(f"{path}: cannot open the writers' lock ({e.strerror})") from e

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, only if it is free (False otherwise)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


# --- a server process -----------------------------------------------------------------------


def worker_main() -> None:
    """A server process: reads its settings (one JSON line) from standard input, serves the
    inherited socket until SIGTERM or SIGINT, or until standard input closes (the parent is
    gone). Prints ``ready`` on standard output once it can serve."""
    from ledger.crypto.keyfiles import KeyRing
    from ledger.service.app import Service, create_app
    from ledger.service.server import run
    from ledger.store import open_store

    spec: dict[str, Any] = json.loads(sys.stdin.buffer.readline())
    n = spec["workers"]
    try:
        ledger = open_store(spec["db"])
        lock = WriterLock(spec["lock"]) if spec["lock"] else None
    except LedgerError as e:
        sys.stderr.write(f"error: {e.message}\n")
        sys.exit(e.exit_code)

    def ready() -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        # Nothing else goes to the parent's pipe: later output (there should be none) joins
        # the access log on stderr.
        os.dup2(2, 1)

    service = Service(
        ledger=ledger,
        keyring=KeyRing(spec["keys_dir"]),
        checkpoint_signer=spec["checkpoint_signer"],
        max_body=spec["max_body"],
        metrics=Metrics(fd=spec["metrics_fd"], slot=spec["worker"], slots=n + 1, processes=n),
        writer_lock=lock,
        worker=spec["worker"],
        on_ready=ready,
    )
    threading.Thread(target=_watch_parent, name="govledger-parent", daemon=True).start()
    tls = spec.get("tls")
    run(create_app(service), socket.socket(fileno=spec["socket_fd"]), tuple(tls) if tls else None)
    ledger.close()


def _watch_parent() -> None:
    """Stop gracefully (SIGTERM to this process) when standard input reaches its end: the
    parent has closed it, or died."""
    while sys.stdin.buffer.read(4096):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


# --- the parent -----------------------------------------------------------------------------


@dataclass
class _Process:
    slot: int
    proc: subprocess.Popen[bytes]
    ready: bool = False
    out: IO[bytes] | None = field(default=None, repr=False)


class Supervisor:
    """The parent of ``workers`` server processes on ``sock``; ``spec`` holds the settings
    every one gets (``worker_main``)."""

    def __init__(self, spec: dict[str, Any], sock: socket.socket, workers: int) -> None:
        self.spec = spec
        self.sock = sock
        self.workers = workers
        self.metrics_fd = shared_file(workers + 1)
        # The parent's own slot (the last) counts the restarts.
        self.metrics = Metrics(
            fd=self.metrics_fd, slot=workers, slots=workers + 1, processes=workers
        )
        self.processes: list[_Process] = []
        self.signals: list[int] = []

    def _spawn(self, slot: int) -> _Process:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from ledger.service.workers import worker_main; worker_main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(self.sock.fileno(), self.metrics_fd),
        )
        assert proc.stdin is not None
        spec = {
            **self.spec,
            "worker": slot,
            "workers": self.workers,
            "socket_fd": self.sock.fileno(),
            "metrics_fd": self.metrics_fd,
        }
        # The settings (the database URL among them) go over the pipe, not the command line.
        proc.stdin.write(json.dumps(spec).encode() + b"\n")
        proc.stdin.flush()
        return _Process(slot, proc, out=proc.stdout)

    def start(self) -> None:
        """Start the processes and wait until each is ready (``ServerFailed`` when one stops
        first: the others are stopped)."""
        self.processes = [self._spawn(i) for i in range(self.workers)]
        while not all(p.ready for p in self.processes):
            self._poll_ready(None)
            for p in self.processes:
                if not p.ready and p.proc.poll() is not None:
                    self._stop_all()
                    raise ServerFailed(
                        f"server process {p.slot} stopped before it was ready "
                        f"({_how(p.proc.returncode)})"
                    )

    def _poll_ready(self, timeout: float | None) -> None:
        waiting = {p.out: p for p in self.processes if not p.ready and p.out is not None}
        if not waiting:
            time.sleep(0.05 if timeout is None else timeout)
            return
        readable, _, _ = select.select(list(waiting), [], [], timeout)
        for out in readable:
            p = waiting[out]
            line = out.readline()
            if line == b"ready\n":
                p.ready = True
            # Ready, or stopped (end of file): the pipe has nothing more to say.
            out.close()
            p.out = None

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM, replacing processes that die; then stop them
        gracefully and return once all have ended."""
        handled = (signal.SIGINT, signal.SIGTERM)
        before = {s: signal.signal(s, self._on_signal) for s in handled}
        try:
            while not self.signals:
                self._poll_ready(0.2)
                for i, p in enumerate(self.processes):
                    if self.signals or p.proc.poll() is None:
                        continue
                    if not p.ready:
                        self._stop_all()
                        raise ServerFailed(
                            f"the replacement of server process {p.slot} stopped before it "
                            f"was ready ({_how(p.proc.returncode)})"
                        )
                    if p.proc.stdin is not None:
                        p.proc.stdin.close()
                    self.processes[i] = new = self._spawn(p.slot)
                    self.metrics.restarted()
                    sys.stderr.write(
                        f"govledger serve: server process {p.slot} (pid {p.proc.pid}) "
                        f"{_how(p.proc.returncode)}; started another (pid {new.proc.pid})\n"
                    )
                    sys.stderr.flush()
            # A process started while the signal came may have missed it.
            for p in self.processes:
                if p.proc.poll() is None:
                    p.proc.send_signal(signal.SIGTERM)
            for p in self.processes:
                p.proc.wait()
        finally:
            for s, h in before.items():
                signal.signal(s, h)
            self._close()
        # End as a single server process does: with the signal that stopped it.
        signal.raise_signal(self.signals[0])

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        # The first signal stops gracefully; a second one stops at once.
        forward = signal.SIGTERM if not self.signals else signal.SIGINT
        self.signals.append(sig)
        for p in self.processes:
            if p.proc.poll() is None:
                p.proc.send_signal(forward)

    def _stop_all(self) -> None:
        for p in self.processes:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        for p in self.processes:
            p.proc.wait()
        self._close()

    def _close(self) -> None:
        for p in self.processes:
            for f in (p.out, p.proc.stdin):
                if f is not None and not f.closed:
                    f.close()


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"
