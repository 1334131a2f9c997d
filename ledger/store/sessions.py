"""Per-thread sessions of a store: each thread that uses a ledger gets a connection of its own.

Both stores keep one ``ThreadSessions``: a session (the store's own type: a connection and
what that thread's transaction holds) is adopted for the calling thread on its first use; the
connections of threads that have ended are closed when the next one is adopted (nothing else
would close them); ``close()`` closes every connection, and a closed ledger refuses new ones.
"""

from __future__ import annotations

import threading
from typing import Any, Generic, Protocol, TypeVar

from ledger.errors import StoreError


class Session(Protocol):
    """What ``ThreadSessions`` needs of a session: its connection and the thread it serves."""

    @property
    def conn(self) -> Any: ...

    @property
    def thread(self) -> threading.Thread: ...


S = TypeVar("S", bound=Session)


class ThreadSessions(Generic[S]):
    """The sessions of one ledger, one per thread that has used it (``where`` names the
    ledger in messages)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.closed = False
        self._local = threading.local()
        self._all: list[S] = []
        self._lock = threading.Lock()

    def current(self) -> S | None:
        """The calling thread's session, or None before its first use."""
        session: S | None = getattr(self._local, "session", None)
        return session

    def refuse_if_closed(self) -> None:
        """``StoreError`` once the ledger is closed."""
        if self.closed:
            raise StoreError(f"{self.where}: the ledger is closed")

    def adopt(self, session: S) -> S:
        """Make ``session`` the calling thread's (its connection closed, and ``StoreError``,
        when the ledger is closed)."""
        with self._lock:
            if self.closed:
                session.conn.close()
                raise StoreError(f"{self.where}: the ledger is closed")
            for s in self._all:
                if not s.thread.is_alive():
                    s.conn.close()
            self._all = [s for s in self._all if s.thread.is_alive()] + [session]
            self._local.session = session
        return session

    def close(self) -> None:
        """Close the connections of every thread; later use raises ``StoreError``."""
        with self._lock:
            self.closed = True
            sessions, self._all = self._all, []
            self._local = threading.local()
        for s in sessions:
            s.conn.close()
