"""`govledger replay --follow`: keep the stored read models caught up with the log, live.

The same fold as every command's catch-up (``projections.driver.catch_up``), run again each
time the log grows: woken by each append on PostgreSQL (``LISTEN``), by polling on SQLite
(``ledger.exchange.follow.growth``). One line (or JSON Line) per catch-up. Ctrl-C or SIGTERM
stops it with exit 0: a catch-up under way stops after the batch it is folding commits, so the
read models always stand at a committed position of the log.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click

from ledger.cli.context import echo_json, plural
from ledger.exchange.follow import growth


class _Stop(Exception):
    """Raised where it is safe to stop: while waiting, or after a committed batch."""


class _Signals:
    """SIGINT and SIGTERM ask to stop; while a catch-up runs the request waits for the end of
    its current batch (``checkpoint``), otherwise it stops the wait at once."""

    def __init__(self) -> None:
        self.stop = False
        self.busy = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True
        if not self.busy:
            raise _Stop

    def checkpoint(self, _events: int = 0) -> None:
        if self.stop:
            raise _Stop

    @contextmanager
    def folding(self) -> Iterator[None]:
        self.busy = True
        try:
            self.checkpoint()
            yield
        finally:
            self.busy = False


def follow_replay(ledger: Any, *, poll: float, as_json: bool) -> None:
    """Catch the stored read models up now and after each append, until SIGINT or SIGTERM."""
    from projections.driver import catch_up

    stored = ledger.read_models()
    signals = _Signals()
    previous = {s: signal.signal(s, signals) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        position: int | None = None
        for _size in growth(ledger, size=-1, poll=poll):
            with signals.folding():
                progress = catch_up(ledger, stored, progress=signals.checkpoint)
            now = min((p.to_seq for p in progress), default=0)
            rebuilt = sorted(p.name for p in progress if p.rebuilt)
            if now != position or rebuilt:
                folded = now - min((p.from_seq for p in progress), default=0)
                _report(now, folded, rebuilt, as_json)
                position = now
            signals.checkpoint()
    except _Stop:
        return
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _report(seq: int, events: int, rebuilt: list[str], as_json: bool) -> None:
    if as_json:
        echo_json({"seq": seq, "events": events, "rebuilt": rebuilt})
        return
    more = f"; rebuilt {', '.join(rebuilt)}" if rebuilt else ""
    click.echo(f"read models at seq {seq} (+{plural(events, 'event')}{more})")
