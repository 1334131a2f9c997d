"""Exporting and listing events: JSON Lines export (SPEC §2.1), ``log`` filters, summaries."""

from __future__ import annotations

from collections.abc import Iterator

from ledger.errors import InputError
from ledger.event.envelope import Event
from ledger.store.base import EventFilter, EventReader
from ledger.verify.chain import envelope_line


def export_lines(
    ledger: EventReader, *, from_seq: int = 1, to_seq: int | None = None
) -> Iterator[bytes]:
    """Each event as its canonical envelope line, streamed from the store."""
    for r in ledger.iter_rows(from_seq=from_seq, to_seq=to_seq):
        yield envelope_line(
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
        )


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
