"""The replay read path's shortcuts give exactly what the plain code gives."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ledger.events import Event
from ledger.store import Ledger, row_to_event
from projections.driver import decode, decode_all
from projections.testing import Events, contract
from tests.conftest import LedgerKeys, populate


def test_row_to_event_builds_the_event_the_dataclass_constructor_builds(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    populate(ledger, keys, runs=2)
    rows = list(ledger.iter_rows())
    for row in rows:
        fast = row_to_event(row)
        plain = Event(*row[:7], json.loads(row[7]), *row[8:])
        assert type(fast) is Event
        assert fast == plain
        assert fast.envelope() == plain.envelope()
    with pytest.raises(dataclasses.FrozenInstanceError):
        row_to_event(rows[0]).seq = 2  # type: ignore[misc]
    assert list(ledger.iter_events()) == [row_to_event(r) for r in rows]


def test_decode_all_gives_what_decode_gives() -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract())
    ev.add("run.submitted", agent="a1", run="r1", objective="o", user="u", risk="low",
           auto_approve=False)  # fmt: skip
    ev.add("x.note", agent="a1", payload={"type": "kept", "n": 1})
    assert decode_all(ev.events) == [decode(e) for e in ev.events]
