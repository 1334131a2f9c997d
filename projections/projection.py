"""What a projection is: the fold, its tables and its version (SPEC §3).

A projection is a fold over the log: ``apply(state, event, payload) -> state``, with a ``name``,
a ``version`` and the ``tables`` its read model lives in (reached through the store-neutral
``ledger.store.base.ReadModels``: standard SQL queries, rows written with ``insert``). ``payload`` is
``event.decoded()``, decoded once by the driver and shared by every projection.

Why ``apply`` mutates: a read model over a million events cannot be copied on every event, nor
held in memory. The driver owns the state it hands to ``apply``; a state caches the rows the
events since the last ``flush`` touched, reads any other row it needs from the tables on demand,
and ``flush`` writes the cache back and forgets it. The fold stays a function of the log: the
state after event N is the same whether it was reached in one pass, in any number of increments
with flushes between them, or after a reload from the tables (the property tests pin this), and
time travel runs the same fold into a scratch database.

To add a read model: subclass ``Projection``, give it a unique ``name``, bump ``version``
whenever its fold or tables change (stored tables of another version are rebuilt), and add an
instance to the list replay folds (``projections.registry``). Projections are applied in that
order, so one may read the state of a projection before it (``depends_on``) for the same event,
or the state of one after it (``consults``) as of the previous event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ledger.store.base import ReadModels

if TYPE_CHECKING:  # the payload models (pydantic) are not needed to declare a projection
    from ledger.event.envelope import AnyPayload, EventView

S = TypeVar("S")

META_TABLE = "projection_meta"
"""One row per projection: ``name``, ``version``, ``last_seq``, ``last_hash``."""


@dataclass(frozen=True, slots=True)
class Table:
    """The schema of one read-model table: columns in order, primary key and indexes."""

    name: str
    columns: tuple[tuple[str, type], ...]
    """``(column, int | str)`` in table order; every column may be NULL except the key."""
    pk: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = field(default=())

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def create(self, db: ReadModels) -> None:
        """Create the table and its indexes (dropping any table of that name first)."""
        db.create(self)


class Projection(ABC, Generic[S]):
    """A read model rebuilt by replay. Subclasses set the class variables and the three methods."""

    name: ClassVar[str]
    version: ClassVar[int]
    tables: ClassVar[tuple[Table, ...]]
    depends_on: ClassVar[tuple[str, ...]] = ()
    """Names of projections whose state ``start`` receives (registered earlier)."""
    consults: ClassVar[tuple[str, ...]] = ()
    """Names of projections registered later whose state ``attach`` receives: ``apply`` may read
    it as it stood after the previous event (a later projection folds each event after this
    one). The driver always folds them together, at the same seq."""
    types: ClassVar[frozenset[str] | None] = None
    """The event types ``apply`` does something with, or None for every type. The driver
    calls ``apply`` only for these (``prepare`` still sees the whole batch): a projection that
    reads a few types costs nothing on the others."""

    @abstractmethod
    def start(self, db: ReadModels, deps: Mapping[str, Any]) -> S:
        """A state over the tables in ``db`` (already created, possibly holding earlier rows)."""

    def attach(self, state: S, consulted: Mapping[str, Any]) -> None:
        """Receive the states named in ``consults``, once every state of the fold is started.
        Default: nothing."""

    def prepare(self, state: S, events: Sequence[EventView]) -> None:
        """Called with each batch of events before they are applied: a chance to load the rows
        they will touch in a few queries instead of one per event. Default: nothing."""

    @abstractmethod
    def apply(self, state: S, event: EventView, payload: AnyPayload) -> S:
        """Fold one event into the state; must depend on nothing but the state and the event."""

    @abstractmethod
    def flush(self, state: S) -> None:
        """Write what changed since the last flush to the tables; the state may drop its cache."""


def column_list(names: Iterable[str]) -> str:
    """``"a", "b"``: column names quoted, as standard SQL has them (a column may be named
    like a keyword of some dialect: ``user`` is one in PostgreSQL)."""
    return ", ".join(f'"{c}"' for c in names)


def conditions(
    filters: Iterable[tuple[str, str, Any]],
) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters for the ``(column, operator, value)`` filters
    whose value is not None (always at least ``1 = 1``, a boolean in every SQL dialect, so the
    list joins with AND)."""
    where, params = ["1 = 1"], []
    for col, op, value in filters:
        if value is not None:
            where.append(f"{col} {op} ?")
            params.append(value)
    return where, params
