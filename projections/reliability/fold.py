"""The reliability read model: tool-call loops, cost caps, quality decline, repeated failures.

SPEC §3, reliability signals. The signals are derived
in replay from the raw events (``reliability_rules``), so they are found even when the runtime
did not flag them. This projection is folded *before* the runs projection, which depends on it:
for each event, the runs projection turns the signals this projection just fired for that event
(``ReliabilityState.fired``) into findings of the run and agent, where they count against
compliance, show in ``runs show``, ``runs list --non-compliant``, ``metrics`` and the tier
evidence like every other finding.

Tables: ``reliability_runs`` and ``reliability_agents`` (the open streaks),
``reliability_signals`` (each signal with all its triggering seqs and the linked runtime
guardrail), ``reliability_policy`` (the policy in force, ``PolicyFold``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

from ledger.event.envelope import (
    AnyPayload,
    EventView,
    FeedbackQuality,
    GuardrailTriggered,
    LlmUsage,
    PolicySet,
    RunCompleted,
    RunFailed,
    ToolCalled,
)
from ledger.store.base import ReadModels
from projections.policy.in_force import PolicyFold, policy_table
from projections.projection import Projection, Table
from projections.reliability import rules as r
from projections.reliability.queries import SIGNALS
from projections.reliability.rules import AgentTrack, RunTrack, Signal


def _table(name: str, cls: type[Any], pk: str) -> Table:
    cols: list[tuple[str, type]] = []
    for f in fields(cls):
        cols.append((f.name, int if f.type in ("int", "int | None") else str))
    return Table(name, tuple(cols), pk=(pk,))


RUN_TRACKS = _table("reliability_runs", RunTrack, "run")
AGENT_TRACKS = _table("reliability_agents", AgentTrack, "agent")
POLICY = policy_table("reliability_policy")
T = TypeVar("T", RunTrack, AgentTrack)

RELEVANT = frozenset(
    {
        "tool.called",
        "llm.usage",
        "feedback.quality",
        "run.failed",
        "run.completed",
        "guardrail.triggered",
        "policy.set",
    }
)
"""Event types this projection reads; every other event is skipped by its type name."""
_RUN_TYPES = frozenset({"tool.called", "llm.usage", "guardrail.triggered"})
_AGENT_TYPES = RELEVANT - {"tool.called", "policy.set"}


_LISTS: dict[type[Any], tuple[int, ...]] = {
    cls: tuple(i for i, f in enumerate(fields(cls)) if f.type == "list[int]")
    for cls in (RunTrack, AgentTrack)
}
"""Positions of the ``list[int]`` fields of each track class."""
_GET: dict[type[Any], Callable[[Any], tuple[Any, ...]]] = {
    cls: attrgetter(*(f.name for f in fields(cls))) for cls in (RunTrack, AgentTrack)
}


def _to_row(obj: RunTrack | AgentTrack) -> tuple[Any, ...]:
    """Lists of seqs (or scores) are stored as comma-separated integers."""
    row = list(_GET[type(obj)](obj))
    for i in _LISTS[type(obj)]:
        row[i] = ",".join(map(str, row[i]))
    return tuple(row)


def _from_row(cls: type[T], row: tuple[Any, ...]) -> T:
    values = list(row)
    for i in _LISTS[cls]:
        values[i] = [int(x) for x in values[i].split(",")] if values[i] else []
    return cls(*values)


class ReliabilityState:
    """The streaks touched since the last flush, the signals fired, the policy in force."""

    __slots__ = ("agents", "db", "fired", "fired_seq", "links", "policy", "runs", "signals")

    def __init__(self, db: ReadModels) -> None:
        self.db = db
        self.policy = PolicyFold(db, POLICY)
        self.runs: dict[str, RunTrack] = {}
        self.agents: dict[str, AgentTrack] = {}
        self.signals: list[Signal] = []
        self.links: list[tuple[int, int, str]] = []
        """``(guardrail seq, signal seq, kind)`` to write at flush."""
        self.fired: list[Signal] = []
        """The signals of event ``fired_seq`` (read by the runs projection for that event)."""
        self.fired_seq = 0

    def load(self, run_ids: Sequence[str], agent_ids: Sequence[str]) -> None:
        _fill(self.db, RUN_TRACKS, RunTrack, run_ids, self.runs)
        _fill(self.db, AGENT_TRACKS, AgentTrack, agent_ids, self.agents)

    def run(self, run_id: str) -> RunTrack:
        rt = self.runs.get(run_id)
        if rt is None:
            self.load([run_id], ())
            rt = self.runs[run_id]
        return rt

    def agent(self, agent_id: str) -> AgentTrack:
        at = self.agents.get(agent_id)
        if at is None:
            self.load((), [agent_id])
            at = self.agents[agent_id]
        return at


def _fill(
    db: ReadModels, table: Table, cls: type[T], ids: Sequence[str], cache: dict[str, T]
) -> None:
    """Load the stored rows of ``ids`` not cached yet; an id not stored starts empty."""
    todo = [i for i in ids if i not in cache]
    for row in _select(db, table, todo):
        cache[row[0]] = _from_row(cls, row)
    for i in todo:
        if i not in cache:
            cache[i] = cls(i)


def _select(db: ReadModels, table: Table, ids: list[str]) -> Iterator[tuple[Any, ...]]:
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        yield from db.execute(
            f"SELECT {', '.join(table.column_names)} FROM {table.name} "
            f"WHERE {table.pk[0]} IN ({', '.join('?' for _ in chunk)})",
            chunk,
        )


def _fire(state: ReliabilityState, event: EventView, fire: r.Fire | None) -> None:
    if fire is None:
        return
    kind, triggers, guard, detail = fire
    signal = Signal(
        event.seq, kind, event.agent, event.run, triggers[0], tuple(triggers), guard, detail
    )
    state.signals.append(signal)
    if state.fired_seq != event.seq:
        state.fired, state.fired_seq = [], event.seq
    state.fired.append(signal)


class ReliabilityProjection(Projection[ReliabilityState]):
    """Reliability signals from replay; the runs projection makes them findings."""

    name = "reliability"
    version = 1
    tables = (RUN_TRACKS, AGENT_TRACKS, SIGNALS, POLICY)
    types = RELEVANT

    def start(self, db: ReadModels, deps: Mapping[str, Any]) -> ReliabilityState:
        return ReliabilityState(db)

    def prepare(self, state: ReliabilityState, events: Sequence[EventView]) -> None:
        runs = {e.run for e in events if e.run is not None and e.type in _RUN_TYPES}
        agents = {e.agent for e in events if e.agent is not None and e.type in _AGENT_TYPES}
        state.load(sorted(runs), sorted(agents))

    def apply(
        self, state: ReliabilityState, event: EventView, payload: AnyPayload
    ) -> ReliabilityState:
        fold = _FOLDS.get(type(payload))
        if fold is not None:  # None for most events: not in RELEVANT
            fold(state, event, payload)
        return state

    def flush(self, state: ReliabilityState) -> None:
        db = state.db
        db.insert(RUN_TRACKS, map(_to_row, state.runs.values()), replace=True)
        db.insert(AGENT_TRACKS, map(_to_row, state.agents.values()), replace=True)
        db.insert(
            SIGNALS,
            [
                (
                    s.seq,
                    s.kind,
                    s.agent,
                    s.run,
                    s.evidence_seq,
                    json.dumps(list(s.triggers)),
                    s.linked_seq,
                    s.detail,
                )
                for s in state.signals
            ],
        )
        for link in state.links:
            db.execute(f"UPDATE {SIGNALS.name} SET linked_seq = ? WHERE seq = ? AND kind = ?", link)
        state.policy.flush()
        state.runs.clear()
        state.agents.clear()
        state.signals.clear()
        state.links.clear()


# What each relevant event does, ``(state, event, payload)``; the rules are ``reliability_rules``.


def _tool_called(state: ReliabilityState, event: EventView, p: ToolCalled) -> None:
    if event.run is not None:
        rules = state.policy.rules.reliability
        _fire(state, event, r.tool_called(state.run(event.run), event, p, rules))


def _llm_usage(state: ReliabilityState, event: EventView, p: LlmUsage) -> None:
    rules = state.policy.rules.reliability
    if event.run is not None:
        _fire(state, event, r.run_usage(state.run(event.run), event, p, rules))
    if event.agent is not None:
        _fire(state, event, r.day_usage(state.agent(event.agent), event, p, rules))


def _feedback(state: ReliabilityState, event: EventView, p: FeedbackQuality) -> None:
    if event.agent is not None:
        rules = state.policy.rules.reliability
        _fire(state, event, r.feedback(state.agent(event.agent), event, p, rules))


def _failed(state: ReliabilityState, event: EventView, p: RunFailed) -> None:
    if event.agent is not None:
        rules = state.policy.rules.reliability
        _fire(state, event, r.failed(state.agent(event.agent), event, p, rules))


def _completed(state: ReliabilityState, event: EventView, p: RunCompleted) -> None:
    if event.agent is not None:
        r.completed(state.agent(event.agent))


def _guardrail(state: ReliabilityState, event: EventView, p: GuardrailTriggered) -> None:
    if p.kind in r.LINKS:
        run, agent = event.run, event.agent
        rt = state.run(run) if run is not None else None
        at = state.agent(agent) if agent is not None else None
        linked = r.guardrail(rt, at, p, event.seq)
        if linked is not None:
            state.links.append((event.seq, *linked))


def _policy(state: ReliabilityState, event: EventView, p: PolicySet) -> None:
    state.policy.observe(p, event.seq)


_FOLDS: dict[type[Any], Callable[..., None]] = {
    ToolCalled: _tool_called,
    LlmUsage: _llm_usage,
    FeedbackQuality: _feedback,
    RunFailed: _failed,
    RunCompleted: _completed,
    GuardrailTriggered: _guardrail,
    PolicySet: _policy,
}
"""Payload class → its fold: the classes of the ``RELEVANT`` types, one dict lookup per event."""
