"""The replay read path's shortcuts give exactly what the plain code gives."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ledger.errors import ProjectionError
from ledger.event.envelope import Event
from ledger.store.sqlite import EventRow, Ledger, row_to_event
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
    ev.add("run.started", agent="a1", run="r1")
    rows = list(ev.replay_events())
    assert decode_all(rows) == [decode(e) for e in ev.events]
    # A payload that carries its own type: the model of the event's type still decides.
    same = rows[1]._replace(payload_text='{"type":"run.submitted",' + rows[1].payload_text[1:])
    assert decode_all([same]) == [decode(rows[1])]
    other = rows[1]._replace(payload_text='{"type":"run.started",' + rows[1].payload_text[1:])
    with pytest.raises(ProjectionError) as via_all:
        decode_all([other])
    with pytest.raises(ProjectionError) as via_one:
        decode(other)
    assert via_all.value.message == via_one.value.message
    assert via_all.value.message.startswith("seq 2: stored run.submitted event does not decode")


def test_replay_rows_are_the_stored_events(ledger: Ledger, keys: LedgerKeys) -> None:
    """``replay_events`` gives each stored event's fields as ``iter_events`` does, the payload
    parsed on demand from the stored text."""
    populate(ledger, keys, runs=2)
    rows = list(ledger.replay_events(from_seq=2, to_seq=20))
    events = list(ledger.iter_events(from_seq=2, to_seq=20))
    assert [r.seq for r in rows] == list(range(2, 21))
    for row, event in zip(rows, events, strict=True):
        assert type(row) is EventRow
        assert row.payload == event.payload
        assert (
            row.payload_text
            == ledger.conn.execute(
                "SELECT payload FROM events WHERE seq = ?", (row.seq,)
            ).fetchone()[0]
        )
        for name in ("seq", "id", "ts", "type", "agent", "run", "actor", "key", "hash"):
            assert getattr(row, name) == getattr(event, name), name
