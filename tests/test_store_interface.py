"""The store interface (``ledger.store.base``) as the SQLite ledger implements it: every member
of the protocols is there, filters select the same events in SQL as in Python, a write
transaction reads and appends atomically, checkpoints and lookups answer as documented."""

from __future__ import annotations

import inspect
from typing import Protocol

import pytest

from ledger.app.governance import apply_changes
from ledger.errors import EventValidationError
from ledger.store import base
from ledger.store.base import EventFilter, ReadModels, Store
from ledger.store.sqlite import Draft, Ledger
from ledger.store.sqlite_read_models import SqliteReadModels
from ledger.tlog.proofs import latest_checkpoint, sign_current_checkpoint
from projections.driver import catch_up
from projections.runs.queries import list_runs
from tests.conftest import ORIGIN, LedgerKeys, populate


def _members(protocol: type) -> set[str]:
    return {
        name
        for cls in protocol.__mro__
        if cls not in (object, Protocol) and cls.__module__ == base.__name__
        for name in vars(cls)
        if not name.startswith("_")
    }


def test_the_sqlite_ledger_has_every_member_of_the_store_interface(ledger: Ledger) -> None:
    store: Store = ledger  # and mypy checks the signatures
    missing = sorted(m for m in _members(Store) if not hasattr(store, m))
    assert missing == []
    models: ReadModels = ledger.read_models()
    assert isinstance(models, SqliteReadModels)
    assert sorted(m for m in _members(ReadModels) if not hasattr(models, m)) == []


def test_the_interface_holds_no_sql() -> None:
    text = inspect.getsource(base)
    for word in (" FROM ", "INSERT INTO", "CREATE TABLE", "PRAGMA", "sqlite3"):
        assert word not in text


FILTERS = [
    EventFilter(),
    EventFilter(run="run-1"),
    EventFilter(agent="planner-1"),
    EventFilter(types=("run.started", "tool.called")),
    EventFilter(types=()),
    EventFilter(agent="planner-1", run="run-0", types=("tool.called",)),
    EventFilter(since="2000-01-01T00:00:00Z", until="2999-01-01T00:00:00Z"),
    EventFilter(until="2000-01-01T00:00:00Z"),
]


@pytest.mark.parametrize("selected", FILTERS, ids=repr)
def test_a_filter_selects_in_the_store_what_it_matches_in_python(
    ledger: Ledger, keys: LedgerKeys, selected: EventFilter
) -> None:
    populate(ledger, keys, runs=2)
    everything = list(ledger.iter_rows())
    expected = [r[0] for r in everything if selected.matches(r)]
    assert [r[0] for r in ledger.iter_rows(filter=selected, batch=3)] == expected
    assert [e.seq for e in ledger.iter_events(from_seq=2, filter=selected)] == [
        s for s in expected if s >= 2
    ]
    assert ledger.count_events(filter=selected) == len(expected)
    assert ledger.count_events(from_seq=3, to_seq=7, filter=selected) == len(
        [s for s in expected if 3 <= s <= 7]
    )


def test_lookups_answer_by_seq(ledger: Ledger, keys: LedgerKeys) -> None:
    populate(ledger, keys, runs=1)
    size, head = ledger.head()
    row = ledger.row_at(size)
    assert row is not None and row[0] == size and row[10] == head
    assert ledger.row_at(size + 1) is None
    assert ledger.last_before(1) is None
    before = ledger.last_before(size)
    assert before is not None
    assert before[:2] == (size - 1, ledger.hash_at(size - 1))
    assert before[2] == ledger.event_at(size - 1).ts


def test_checkpoints_are_kept_and_the_newest_covering_one_is_found(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    assert ledger.latest_checkpoint() is None
    first = sign_current_checkpoint(ledger, keys.root)
    ledger.append(Draft("x.note", {"i": 1}), signer=keys.recorder)
    second = sign_current_checkpoint(ledger, keys.root)
    assert first != second and ORIGIN in second
    assert latest_checkpoint(ledger, 0) == second
    assert ledger.latest_checkpoint(ledger.size) == second
    assert ledger.latest_checkpoint(ledger.size + 1) is None


def test_a_write_transaction_reads_the_read_models_then_appends_atomically(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    populate(ledger, keys, runs=1)
    size = ledger.size
    with ledger.write() as tx:
        db = ledger.read_models()
        catch_up(ledger, db)
        runs = list_runs(db)
        events = tx.append(
            [Draft("x.note", {"runs": len(runs)}), Draft("x.note", {"i": 2})], signer=keys.recorder
        )
    assert [e.seq for e in events] == [size + 1, size + 2]
    assert ledger.event_at(size + 1).payload == {"runs": 1}
    # A bad draft in a transaction's append rolls the whole transaction back.
    with pytest.raises(EventValidationError), ledger.write() as tx:
        tx.append([Draft("x.note", {"i": 3})], signer=keys.recorder)
        tx.append([Draft("run.started", {})], signer=keys.recorder)
    assert ledger.size == size + 2
    assert ledger.append(Draft("x.note", {"i": 4}), signer=keys.recorder).seq == size + 3


def test_tier_changes_are_recorded_through_the_public_write_transaction(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    populate(ledger, keys, runs=1)
    before = ledger.size
    applied = apply_changes(ledger, keys.root)
    assert ledger.size == before + len(applied.recorded)
    assert [e.seq for e in applied.recorded] == list(range(before + 1, ledger.size + 1))
