"""The replay driver: folds the log through the registered projections into read-model tables.

SPEC §1.5, §3. Each projection keeps a row in ``projection_meta`` with its version and
the ``seq`` and ``hash`` of the last event applied, written in the same transaction as its rows.
``catch_up`` applies only the events after that seq, in batches of ``BATCH`` events, one
transaction each (so a reader never sees half a batch and writers are never locked out for a
whole rebuild). Stored tables are rebuilt from scratch when their version differs from the
code's, when the hash no longer matches the log (a rewritten or forked log), or when they claim
more events than the log holds.

Time travel (``build_at``) and ``check`` run the same fold into a scratch database, so the stored
read models are never touched by them. Tables are reached only through the store-neutral
``ledger.store.base.ReadModels``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from ledger.errors import LedgerError, ProjectionError
from ledger.event.catalog import payload_validator
from ledger.event.envelope import (
    PAYLOAD_ADAPTER,
    ZERO_HASH,
    AnyPayload,
    EventView,
    UserPayload,
)
from ledger.event.rows import EventRow
from ledger.store.base import ReadModels
from projections.current import Position, positions, stale_reason
from projections.projection import META_TABLE, Projection, Table
from projections.registry import Declared, declared_projections, default_projections

BATCH = 20_000
"""Events applied per transaction (and per flush of the projections' caches)."""

META = Table(
    META_TABLE,
    (("name", str), ("version", int), ("last_seq", int), ("last_hash", str)),
    pk=("name",),
)


class EventSource(Protocol):
    """What the driver needs from a log (any ``ledger.store.base.Store`` is one)."""

    def replay_events(
        self, *, from_seq: int = 1, to_seq: int | None = None
    ) -> Iterator[EventRow]: ...

    def head(self) -> tuple[int, str]: ...

    def hash_at(self, seq: int) -> str: ...

    def scratch_read_models(self) -> AbstractContextManager[ReadModels]:
        """Empty read-model tables to fold into, discarded on exit (time travel)."""
        ...


class _Validators(dict[str, Callable[[Any], Any] | None]):
    """Event type → one method of its payload model's validator (``validate_python``: what
    ``PAYLOAD_ADAPTER`` calls once the discriminator has picked the model, without building
    ``{"type": ..., **payload}`` per event; ``validate_json``: the stored JSON text parsed and
    validated in one pass). Filled on first use, so only the models of the types a fold meets
    are built (``ledger.event.catalog.payload_validator``); None for a type not in the catalog."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method

    def __missing__(self, event_type: str) -> Callable[[Any], Any] | None:
        validator = payload_validator(event_type)
        if validator is None:
            return None  # not remembered: user types are many and take the slow path anyway
        found: Callable[[Any], Any] = getattr(validator, self.method)
        self[event_type] = found
        return found


_VALIDATE = _Validators("validate_python")
_VALIDATE_JSON = _Validators("validate_json")


def decode(event: EventView) -> AnyPayload:
    """The typed payload of a stored event (``ProjectionError`` when it does not validate: the
    log holds an event it should not; ``govledger verify`` says more)."""
    payload = event.payload
    try:
        validate = _VALIDATE[event.type]
        if validate is not None and type(payload) is dict and "type" not in payload:
            result: AnyPayload = validate(payload)
            return result
        if event.type.startswith("x."):
            return UserPayload(type=event.type, data=payload)
        return PAYLOAD_ADAPTER.validate_python({"type": event.type, **payload})
    except (ValidationError, LedgerError, TypeError) as e:
        raise ProjectionError(
            f"seq {event.seq}: stored {event.type} event does not decode, cannot replay "
            f"(run `govledger verify`): {str(e).splitlines()[0]}"
        ) from e


def decode_all(events: Sequence[EventRow]) -> list[AnyPayload]:
    """``decode`` of each event, with its common case inlined: a catalog type, whose model
    validates the stored payload text directly (pydantic parses and validates in one pass; the
    payload is never built as a dict). The rest, and every failure, is left to ``decode``, so
    the result and any error are what ``decode`` gives."""
    validators = _VALIDATE_JSON
    out: list[AnyPayload] = []
    append = out.append
    for event in events:
        validate = validators[event.type]
        if validate is not None:
            try:
                append(validate(event.payload_text))
                continue
            except (ValidationError, LedgerError, TypeError):
                pass
        append(decode(event))
    return out


@dataclass(frozen=True, slots=True)
class Progress:
    """What one ``catch_up`` did for one projection."""

    name: str
    from_seq: int
    """Last seq applied before (0 after a rebuild)."""
    to_seq: int
    rebuilt: str | None
    """Why the tables were rebuilt from scratch, or None."""


def _set_position(db: ReadModels, p: Projection[Any], seq: int, hash_: str) -> None:
    db.insert(META, [(p.name, p.version, seq, hash_)], replace=True)


def catch_up(
    source: EventSource,
    db: ReadModels,
    *,
    to_seq: int | None = None,
    projections: Sequence[Projection[Any]] | None = None,
    rebuild: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> list[Progress]:
    """Bring the stored tables of ``projections`` (default: ``default_projections()``) up to ``to_seq``
    (default: the head of the log), rebuilding those that are stale, or all with ``rebuild``.

    Cheap when nothing is new: one read of ``projection_meta``, the head and one hash, judged
    against the projections' declarations (``projections.registry.declared_projections``), so
    the fold modules are imported only when there is something to fold or rebuild.
    ``progress`` is told how many events each committed batch folded (for a progress bar).
    """
    declared = _with_dependencies(projections)
    size, _ = source.head()
    target = size if to_seq is None else min(to_seq, size)
    before = positions(db)
    reasons: dict[str, str | None] = {d.name: "replay requested" for d in declared}
    behind = any(d.name not in before or before[d.name].last_seq < target for d in declared)
    if not rebuild and not behind:
        # Nothing to fold, unless a projection is stale. (When one is behind, the loop below
        # judges staleness under the write lock anyway: judging it here too would double the
        # cost of folding a few new events, what the gate pays after each append.)
        reasons = {d.name: stale_reason(source, d, before.get(d.name), db) for d in declared}
        if not any(reasons.values()):
            return [
                Progress(d.name, before[d.name].last_seq, before[d.name].last_seq, None)
                for d in declared
            ]
    projs = _load(declared, projections)
    done: dict[str, Progress] = {}
    first = True
    while True:
        with db.transaction():
            if not db.exists(META_TABLE):
                db.create(META)
            pos = positions(db)
            for p in projs:
                # Re-judged under the write lock: another process may have caught up meanwhile.
                why = (
                    reasons[p.name]
                    if (first and rebuild)
                    else stale_reason(source, p, pos.get(p.name), db)
                )
                if why is not None:
                    for t in p.tables:
                        db.create(t)
                    _set_position(db, p, 0, ZERO_HASH)
                    pos[p.name] = Position(p.name, p.version, 0, ZERO_HASH)
                    done[p.name] = Progress(p.name, 0, 0, why)
                elif p.name not in done:
                    done[p.name] = Progress(p.name, pos[p.name].last_seq, 0, None)
            _realign_dependencies(db, projs, pos, done)
            first = False
            low = min(pos[p.name].last_seq for p in projs)
            if low >= target:
                break
            high = min(target, low + batch)
            with _no_gc():
                last_hash = _apply_range(source, db, projs, pos, low + 1, high)
            for p in projs:
                if pos[p.name].last_seq < high:
                    _set_position(db, p, high, last_hash)
        if progress is not None:
            progress(high - low)
        if high >= target:
            break  # folded to the target: no need for another transaction to find that out
    final = positions(db)
    return [
        Progress(p.name, done[p.name].from_seq, final[p.name].last_seq, done[p.name].rebuilt)
        for p in projs
    ]


def _with_dependencies(projections: Sequence[Projection[Any]] | None) -> list[Declared]:
    """``projections`` (default: ``default_projections()``) and the projections they depend on or
    consult, and theirs, in registration order, as declarations: a projection's ``start`` needs
    its dependencies' states, its ``apply`` the consulted ones."""
    if projections is None:
        return list(declared_projections())
    given = [Declared.of(p) for p in projections]
    known = {d.name: d for d in (*declared_projections(), *given)}
    names: set[str] = set()
    todo = [d.name for d in given]
    while todo:
        name = todo.pop()
        if name not in names:
            names.add(name)
            todo.extend((*known[name].depends_on, *known[name].consults))
    ordered = [d for d in declared_projections() if d.name in names]
    return ordered + [d for d in given if d.name not in {q.name for q in ordered}]


def _load(
    declared: Sequence[Declared], projections: Sequence[Projection[Any]] | None
) -> list[Projection[Any]]:
    """The projections ``declared`` names, in that order: the registered ones (importing the
    built-in folds), then those of ``projections`` that are not registered."""
    by_name = {p.name: p for p in (*(projections or ()), *default_projections())}
    return [by_name[d.name] for d in declared]


def _realign_dependencies(
    db: ReadModels,
    projs: list[Projection[Any]],
    pos: dict[str, Position],
    done: dict[str, Progress],
) -> None:
    """A projection reads its dependencies' state as of each event it folds, so a dependency
    ahead of it (e.g. runs, when tiers is built for the first time) is folded again from
    scratch alongside it; and a projection whose dependency was rebuilt (a new version may
    change what it reads) is rebuilt with it. The same holds between a projection and those it
    consults (runs reads the tiers state)."""
    by_name = {p.name: p for p in projs}

    def reset(q: Projection[Any], why: str) -> None:
        for t in q.tables:
            db.create(t)
        _set_position(db, q, 0, ZERO_HASH)
        pos[q.name] = Position(q.name, q.version, 0, ZERO_HASH)
        done[q.name] = Progress(q.name, 0, 0, why)

    # Until every projection, its dependencies and those it consults stand at the same seq: a
    # reset can put a dependency behind its own dependencies (tiers → runs → reliability), so
    # repeat. Dependencies first, so a reset names the closer link.
    links = [(p, d, "depends on") for p in projs for d in p.depends_on]
    links += [(p, d, "consults") for p in projs for d in p.consults]
    changed = True
    while changed:
        changed = False
        for p, d, verb in links:
            if pos[d].last_seq < pos[p.name].last_seq:
                reset(p, f"rebuilt with {d}, which it {verb}")
                changed = True
            elif pos[d].last_seq > pos[p.name].last_seq:
                reset(by_name[d], f"rebuilt with {p.name}, which {verb} it")
                changed = True


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch is folded: the batch allocates many
    acyclic objects, and each collection would walk all of them again (a third of replay time).
    Reference counting still frees everything; collection resumes after the batch."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _apply_range(
    source: EventSource,
    db: ReadModels,
    projs: list[Projection[Any]],
    pos: dict[str, Position],
    from_seq: int,
    to_seq: int,
) -> str:
    """Fold events ``from_seq..to_seq`` into every projection not already past them; flush."""
    states: dict[str, Any] = {}
    for p in projs:
        states[p.name] = p.start(db, {d: states[d] for d in p.depends_on})
    for p in projs:
        if p.consults:
            p.attach(states[p.name], {c: states[c] for c in p.consults})
    # The batch is held in memory (at most ``BATCH`` events) so each projection can load the
    # rows it will touch in a few queries (``prepare``) before folding.
    events = list(source.replay_events(from_seq=from_seq, to_seq=to_seq))
    payloads = decode_all(events)
    behind = [(p, states[p.name], pos[p.name].last_seq) for p in projs]
    for p, state, _ in behind:
        p.prepare(state, events)
    applies = [(p.apply, state, last, p.types) for p, state, last in behind]
    if all(last < from_seq for _, _, last, _ in applies):
        # The common case (every projection is behind the whole batch): for each event type,
        # the projections that read it, in registration order; no seq test per event.
        plans: dict[str, list[tuple[Callable[..., Any], Any]]] = {}
        for event, payload in zip(events, payloads, strict=True):
            plan = plans.get(event.type)
            if plan is None:
                plan = plans[event.type] = [
                    (apply, state)
                    for apply, state, _, types in applies
                    if types is None or event.type in types
                ]
            for apply, state in plan:
                apply(state, event, payload)
    else:
        for event, payload in zip(events, payloads, strict=True):
            for apply, state, last, types in applies:
                if event.seq > last and (types is None or event.type in types):
                    apply(state, event, payload)
    last_hash = events[-1].hash if events else ""
    for p, state, _ in behind:
        p.flush(state)
    return last_hash


@contextmanager
def build_at(
    source: EventSource,
    to_seq: int,
    *,
    projections: Sequence[Projection[Any]] | None = None,
) -> Iterator[ReadModels]:
    """Build the read models as they stood after event ``to_seq`` in a scratch database
    (``source.scratch_read_models``).

    The stored read models are never touched; the scratch database is deleted on exit.
    """
    with source.scratch_read_models() as db:
        catch_up(source, db, to_seq=to_seq, projections=projections)
        yield db
