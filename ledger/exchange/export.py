"""Exporting and listing events: JSON Lines export (docs/formats.md), the other export formats
(docs/exports.md), atomic output files, ``log`` filters, summaries."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ledger.errors import InputError
from ledger.event.body import envelope_line
from ledger.event.envelope import Event
from ledger.exchange.rows import ExportItem
from ledger.store.base import EventFilter, EventReader

FORMATS = ("jsonl", "cloudevents", "otlp", "aat")
"""The names ``export --format`` takes; ``jsonl`` is the default."""


def export_lines(
    ledger: EventReader, *, from_seq: int = 1, to_seq: int | None = None
) -> Iterator[bytes]:
    """Each event as its canonical envelope line, streamed from the store."""
    for _, line in export_items(ledger, from_seq=from_seq, to_seq=to_seq):
        yield line


def export_items(
    ledger: EventReader, *, from_seq: int = 1, to_seq: int | None = None
) -> Iterator[ExportItem]:
    """Each stored row with its canonical envelope line, streamed (constant memory)."""
    for r in ledger.iter_rows(from_seq=from_seq, to_seq=to_seq):
        yield (
            r,
            envelope_line(
                seq=r[0],
                id=r[1],
                ts=r[2],
                type=r[3],
                agent=r[4],
                run=r[5],
                actor=r[6],
                payload=r[7],
                prev=r[8],
                key=r[9],
                hash=r[10],
                sig=r[11],
            ),
        )


def format_chunks(fmt: str, items: Iterable[ExportItem], *, origin: str) -> Iterator[bytes]:
    """The bytes of an export in format ``fmt`` (one of ``FORMATS``), chunk by chunk.

    Every format streams: a format that is one JSON document (a CloudEvents batch, an OTLP
    request) is written as its opening, one chunk per item, and its closing.
    """
    if fmt == "jsonl":
        return (line for _, line in items)
    if fmt == "cloudevents":
        from ledger.exchange.cloudevents import cloudevents_chunks

        return cloudevents_chunks(items, origin=origin)
    if fmt == "otlp":
        from ledger.exchange.otlp import otlp_chunks

        return otlp_chunks(items, origin=origin)
    if fmt == "aat":
        from ledger.exchange.aat import aat_chunks

        return aat_chunks(items, origin=origin)
    raise InputError(f"--format: unknown format {fmt!r}; want one of {', '.join(FORMATS)}")


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` only when the ``with`` block ends normally.

    Written as a temporary file in the same directory and renamed over ``path``; on any error
    the temporary file is removed and ``path`` is left as it was (absent or the old file).
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as e:
        raise InputError(f"-o: cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except OSError as e:
            raise InputError(f"-o: cannot write {path}: {e.strerror}") from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it), so the renamed file gets the
    permissions a plain ``open`` would have given it rather than ``mkstemp``'s 0600."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def counted(items: Iterable[ExportItem], tick: Callable[[int], None]) -> Iterator[ExportItem]:
    """``items`` unchanged, calling ``tick(n)`` with the running count after each one."""
    for n, item in enumerate(items, 1):
        yield item
        tick(n)


def event_filter(
    *,
    run: str | None = None,
    agent: str | None = None,
    event_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> EventFilter:
    """The ``EventFilter`` of ``log``'s options (``InputError`` for text that is not UTF-8)."""
    for column, value in (("run", run), ("agent", agent), ("type", event_type)):
        # A command-line argument that was not UTF-8: no store can take it.
        if (
            value is not None
            and not value.isascii()
            and any("\ud800" <= c <= "\udfff" for c in value)
        ):
            raise InputError(f"--{column}: {value!r} is not valid UTF-8 text")
    return EventFilter(
        run=run,
        agent=agent,
        types=None if event_type is None else (event_type,),
        since=since,
        until=until,
    )


_SUMMARY_FIELDS = (
    "tool",
    "side_effect",
    "status",
    "decision",
    "confidence_bp",
    "kind",
    "severity",
    "risk",
    "required_tier",
    "approver",
    "mode",
    "failure_class",
    "cost_micro_usd",
    "score_bp",
    "topic",
    "from",
    "to",
    "name",
    "role",
    "origin",
    "version",
    "reason",
)


def summarize(event: Event, width: int = 80) -> str:
    """A one-line summary of an event's payload for people."""
    p = event.payload
    parts = [f"{k}={p[k]}" for k in _SUMMARY_FIELDS if k in p and not isinstance(p[k], dict | list)]
    if event.type == "capability.granted":
        parts.insert(0, "tools=" + ",".join(map(str, p.get("tools", []))))
    if event.type == "run.planned":
        parts.insert(0, f"steps={len(p.get('steps', []))}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"
