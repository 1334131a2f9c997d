"""Stored events as every store reads them: the raw row, the replay's ``EventRow``, and the
stored payload text as Python objects. No storage here: any store yields these (``ledger.store``)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, NamedTuple

from pydantic_core import from_json

from ledger.event.envelope import Event, build_event

Row = tuple[int, str, str, str, str | None, str | None, str | None, str, str, str, str, str]
"""A stored event, its fields in ``ledger.event.framing.ROW_FIELDS`` order (seq ... sig)."""


class EventRow(NamedTuple):
    """An event as replay reads it: the stored row itself, its payload parsed only when
    ``payload`` is asked for (projections decode ``payload_text`` straight to the typed model,
    see ``projections.driver.decode_all``), without ``prev`` and ``sig``, which no read model
    uses (verification reads them). Built from a row by ``tuple.__new__``, a fifth of the cost
    of an ``Event``; an ``EventView`` like ``Event``."""

    seq: int
    id: str
    ts: str
    type: str
    agent: str | None
    run: str | None
    actor: str | None
    payload_text: str
    key: str
    hash: str

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as Python objects, parsed at each call."""
        value: dict[str, Any] = parse_stored(self.payload_text)
        return value


event_row = partial(tuple.__new__, EventRow)
"""The ``EventRow`` of a tuple of its ten fields, without ``NamedTuple``'s argument handling."""


def row_to_event(row: Row) -> Event:
    """The ``Event`` of a stored row, payload parsed. Stored payloads were validated at append;
    verification re-checks them, not reads."""
    return build_event(row, parse_stored(row[7]))


def parse_stored(text: str) -> Any:
    """A stored payload's JSON text as Python objects. ``pydantic_core.from_json`` gives what
    ``json.loads`` gives for the store's canonical text, about three times faster; text it
    refuses (lone surrogates in a tampered file) goes to ``json`` so the error is the usual one."""
    try:
        return from_json(text, cache_strings="keys")
    except ValueError:
        return json.loads(text)
