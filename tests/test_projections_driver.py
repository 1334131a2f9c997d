"""The replay driver: plugging projections in, dependencies, bad stored events, real stores."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from ledger.errors import ProjectionError
from ledger.event.envelope import AnyPayload, Event
from ledger.event.rows import EventRow, row_to_event
from ledger.store.base import ReadModels
from ledger.store.sqlite import Ledger
from ledger.store.sqlite_read_models import SqliteReadModels, memory
from projections import RUNS
from projections.current import positions
from projections.driver import build_at, catch_up, decode, decode_all
from projections.projection import Projection, Table
from projections.replay_check import check
from projections.runs.queries import findings, get_run
from projections.runs.state import RunsState
from projections.testing import DIGEST, Events, contract, replay
from tests.conftest import LedgerKeys, bump_version, populate

COUNTS = Table("run_event_counts", (("run", str), ("n", int), ("state", str)), pk=("run",))


class CountsState:
    def __init__(self, db: ReadModels, runs: RunsState) -> None:
        self.db, self.runs, self.rows = db, runs, {}  # type: dict[str, tuple[int, str]]


class Counts(Projection[CountsState]):
    """Events per run, and the run's state as the runs projection has it after each event."""

    name = "counts"
    version = 1
    tables = (COUNTS,)
    depends_on = ("runs",)

    def start(self, db: ReadModels, deps: Mapping[str, Any]) -> CountsState:
        return CountsState(db, deps["runs"])

    def prepare(self, state: CountsState, events: Sequence[Event]) -> None:
        pass

    def apply(self, state: CountsState, event: Event, payload: AnyPayload) -> CountsState:
        if event.run is not None:
            n = state.rows.get(event.run, (None, None))[0]
            if n is None:
                row = state.db.execute("SELECT n FROM run_event_counts WHERE run = ?", [event.run])
                n = (row.fetchone() or (0,))[0]
            state.rows[event.run] = (n + 1, state.runs.run(event.run).state)
        return state

    def flush(self, state: CountsState) -> None:
        state.db.insert(COUNTS, [(r, n, s) for r, (n, s) in state.rows.items()], replace=True)
        state.rows.clear()


def small_log() -> Events:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract())
    for run in ("r1", "r2"):
        ev.add("run.submitted", agent="a1", run=run, objective="o", user="u", risk="low",
               auto_approve=False)  # fmt: skip
        ev.add("run.cancelled", agent="a1", run=run, reason="no")
    return ev


def test_a_plugged_in_projection_reads_the_runs_state_of_the_same_event() -> None:
    ev = small_log()
    db = memory()
    catch_up(ev, db, projections=[Counts()], batch=2)
    rows = {r["run"]: (r["n"], r["state"]) for r in db.sqlite["run_event_counts"].rows}
    assert rows == {"r1": (2, "cancelled"), "r2": (2, "cancelled")}
    # runs depends on reliability and consults tiers: folded with them
    assert set(positions(db)) == {"reliability", "runs", "tiers", "counts"}


SEEN = Table("seen", (("seq", int), ("type", str)), pk=("seq",))


class SeenState:
    def __init__(self, db: ReadModels) -> None:
        self.db, self.rows = db, []  # type: ReadModels, list[tuple[int, str]]


class Cancellations(Projection[SeenState]):
    """The events it was applied to: only the types it declares."""

    name = "cancellations"
    version = 1
    tables = (SEEN,)
    types = frozenset({"run.cancelled"})

    def start(self, db: ReadModels, deps: Mapping[str, Any]) -> SeenState:
        return SeenState(db)

    def apply(self, state: SeenState, event: Event, payload: AnyPayload) -> SeenState:
        state.rows.append((event.seq, event.type))
        return state

    def flush(self, state: SeenState) -> None:
        state.db.insert(SEEN, state.rows)
        state.rows.clear()


@pytest.mark.parametrize("runs_first", [False, True], ids=["alone", "runs-ahead"])
def test_the_driver_applies_a_projection_only_to_the_event_types_it_reads(
    runs_first: bool,
) -> None:
    ev = small_log()
    db = memory()
    if runs_first:  # runs ahead of it: the batch is folded with a seq test per projection
        catch_up(ev, db, projections=[RUNS])
    catch_up(ev, db, projections=[RUNS, Cancellations()], batch=2)
    assert [(r["seq"], r["type"]) for r in db.sqlite["seen"].rows] == [
        (3, "run.cancelled"),
        (5, "run.cancelled"),
    ]
    assert positions(db)["cancellations"].last_seq == len(ev.events)


def test_iter_rows_stops_at_to_seq(ledger: Ledger, keys: LedgerKeys) -> None:
    populate(ledger, keys, runs=2)
    size = ledger.size
    for to_seq in (1, 3, size - 1, size, size + 5):
        rows = list(ledger.iter_rows(from_seq=2, to_seq=to_seq, batch=2))
        assert [r[0] for r in rows] == list(range(2, min(to_seq, size) + 1))


def test_a_projection_is_rebuilt_when_its_dependency_is(monkeypatch: pytest.MonkeyPatch) -> None:
    ev = small_log()
    db = memory()
    catch_up(ev, db, projections=[Counts()])
    bump_version(monkeypatch, RUNS)
    progress = {p.name: p.rebuilt for p in catch_up(ev, db, projections=[Counts()])}
    assert progress == {
        # runs reads the reliability signals of each event: refolded alongside it
        "reliability": "rebuilt with runs, which depends on it",
        "runs": f"version changed from {RUNS.version - 1} to {RUNS.version}",
        # runs consults the tiers state: folded alongside it, and tiers reads runs
        "tiers": "rebuilt with runs, which it depends on",
        "counts": "rebuilt with runs, which it depends on",
    }
    assert {r["run"]: r["n"] for r in db.sqlite["run_event_counts"].rows} == {"r1": 2, "r2": 2}


def test_a_stored_event_that_does_not_decode_stops_replay_with_a_projection_error() -> None:
    ev = small_log()
    bad = ev.events[1]
    ev.events[1] = Event(bad.seq, bad.id, bad.ts, bad.type, bad.agent, bad.run, bad.actor,
                         {"objective": 1}, bad.prev, bad.key, bad.hash, bad.sig)  # fmt: skip
    with pytest.raises(ProjectionError) as e:
        replay(ev)
    assert str(e.value).startswith(
        "seq 2: stored run.submitted event does not decode, cannot replay (run `govledger verify`)"
    )
    assert e.value.exit_code == 1


def test_real_store_full_incremental_and_time_travel_agree(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    populate(ledger, keys, runs=3)
    size = ledger.size
    catch_up(ledger, ledger.read_models(), to_seq=size - 7)
    catch_up(ledger, ledger.read_models())
    incremental = get_run(ledger.read_models(), "run-2")
    catch_up(ledger, ledger.read_models(), rebuild=True)
    assert get_run(ledger.read_models(), "run-2") == incremental
    with build_at(ledger, size - 1) as past:
        before_end = get_run(past, "run-2")
    assert before_end is not None and before_end.row["state"] == "running"
    assert incremental is not None and incremental.row["state"] == "completed"
    assert positions(ledger.read_models())["runs"].last_seq == size


def test_catch_up_commits_read_models_relaxed_and_leaves_appends_durable(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    """Read-model commits of their own skip the fsync (derived data): ``synchronous`` is
    NORMAL from before BEGIN to after COMMIT, then back at FULL for the appends; inside a
    caller's transaction (as ``tiers apply`` runs it) it is not touched."""
    populate(ledger, keys, runs=2)
    statements: list[str] = []
    ledger.conn.set_trace_callback(statements.append)
    catch_up(ledger, ledger.read_models())
    ledger.conn.set_trace_callback(None)
    sync = [
        s
        for s in statements
        if s.startswith("PRAGMA synchronous =") or s in ("BEGIN IMMEDIATE", "COMMIT")
    ]
    assert sync[:4] == [
        "PRAGMA synchronous = NORMAL",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "PRAGMA synchronous = 2",
    ]
    assert sync == sync[:4] * (len(sync) // 4)
    assert ledger.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    populate(ledger, keys, runs=1)
    statements.clear()
    ledger.conn.set_trace_callback(statements.append)
    with ledger.write():
        catch_up(ledger, ledger.read_models())
    ledger.conn.set_trace_callback(None)
    assert not [s for s in statements if s.startswith("PRAGMA synchronous =")]
    ledger.conn.execute("PRAGMA synchronous = OFF")
    catch_up(ledger, ledger.read_models(), rebuild=True)
    assert ledger.conn.execute("PRAGMA synchronous").fetchone()[0] == 0  # never raised


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


def _run_head(ev: Events, agent: str, name: str) -> dict[str, str]:
    a = {"agent": agent, "run": name}
    ev.add("run.submitted", objective="o", user="u", risk="low", auto_approve=True, **a)
    ev.add("run.approved", approver="x", mode="auto", plan_digest=DIGEST, **a)
    return a


def test_dropping_a_dependent_table_rebuilds_every_dependency_and_keeps_signals() -> None:
    ev = Events()
    ev.add("agent.registered", agent="a1", **contract(tier=1))
    a = _run_head(ev, "a1", "r1")
    ev.add("capability.granted", tools=["t"], capabilities=[], token_digest=DIGEST, **a)
    ev.add("run.started", **a)
    for _ in range(3):
        ev.add("tool.called", tool="t", args_digest=DIGEST, side_effect="read", **a)
    ev.add("run.completed", steps_completed=1, **a)
    db = SqliteReadModels(sqlite3.connect(tempfile.mktemp(suffix=".db"), isolation_level=None))
    catch_up(ev, db)
    before = [(f.seq, f.kind) for f in findings(db)]
    assert "tool_loop" in {k for _, k in before}
    db.drop("tier_runs")
    catch_up(ev, db)
    assert [(f.seq, f.kind) for f in findings(db)] == before
    assert check(ev, db) == []
