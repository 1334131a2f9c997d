"""Follow a log: the events appended after a seq, or its growing size, as they come, until
interrupted.

SPEC §5 ``follow``, §8. Events are read by ``seq`` (never from a notification's content, so
nothing is missed or doubled); between reads the follower waits for a wake-up: PostgreSQL's
``LISTEN govledger_events`` (the insert trigger notifies) beside a poll timeout, a plain poll
for SQLite.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ledger.event.envelope import Event

POLL_SECONDS = 1.0


def follow(ledger: Any, *, from_seq: int, poll: float = POLL_SECONDS) -> Iterator[Event]:
    """Events from ``from_seq`` on, in seq order, waiting for new ones forever."""
    wake = _waker(ledger)
    try:
        next_seq = from_seq
        while True:
            for event in ledger.iter_events(from_seq=next_seq):
                yield event
                next_seq = event.seq + 1
            wake(poll)
    finally:
        close = getattr(wake, "close", None)
        if close is not None:
            close()


def growth(ledger: Any, *, size: int, poll: float = POLL_SECONDS) -> Iterator[int]:
    """The log's size each time it is found larger than the last one yielded (``size`` to
    start with): at once when it already is, then after each wake-up that finds it grown."""
    wake = _waker(ledger)
    try:
        while True:
            now = ledger.size
            if now > size:
                size = now
                yield now
            else:
                wake(poll)
    finally:
        close = getattr(wake, "close", None)
        if close is not None:
            close()


def _waker(ledger: Any) -> Any:
    listen = getattr(ledger, "listen", None)
    if listen is not None:
        return listen()
    return time.sleep
