"""Where the stored read models stand, and whether they are current, judged without the
replay driver.

``positions`` reads the ``projection_meta`` rows; ``stale_reason`` says why a projection's
tables cannot be caught up incrementally. ``catch_up`` (``projections.driver``) makes its
judgment with them, and so does ``read_models_current``, which a reading command asks first
(``ledger.app.governance.read_models``): when every declared projection
(``projections.registry.declared_projections``) is at the head of the log and none is stale,
there is nothing to fold, and ``projections.driver`` (which decodes payloads to the catalog's
pydantic models) is not imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ledger.event.framing import ZERO_HASH
from ledger.store.base import ReadModels
from projections.projection import META_TABLE
from projections.registry import Declared, declared_projections

if TYPE_CHECKING:
    from projections.projection import Projection


class Head(Protocol):
    """What the judgment reads of a log (any ``ledger.store.base.Store`` is one)."""

    def head(self) -> tuple[int, str]: ...

    def hash_at(self, seq: int) -> str: ...


@dataclass(frozen=True, slots=True)
class Position:
    """Where a projection's stored tables stand."""

    name: str
    version: int
    last_seq: int
    last_hash: str


def positions(db: ReadModels) -> dict[str, Position]:
    """The ``projection_meta`` rows, by projection name (empty when nothing was ever built)."""
    if not db.exists(META_TABLE):
        return {}
    rows = db.execute(f"SELECT name, version, last_seq, last_hash FROM {META_TABLE}")
    return {r[0]: Position(*r) for r in rows}


def stale_reason(
    source: Head,
    projection: Declared | Projection[Any],
    pos: Position | None,
    db: ReadModels,
) -> str | None:
    """Why the stored tables of ``projection`` (or of the projection it declares) cannot be
    caught up incrementally, or None."""
    if pos is None:
        return "never built"
    if pos.version != projection.version:
        return f"version changed from {pos.version} to {projection.version}"
    size, _ = source.head()
    if pos.last_seq > size:
        return f"read model is at seq {pos.last_seq} but the log holds {size} events"
    if pos.last_seq > 0 and source.hash_at(pos.last_seq) != pos.last_hash:
        return f"hash of seq {pos.last_seq} no longer matches the log"
    if pos.last_seq == 0 and pos.last_hash != ZERO_HASH:
        return "bad hash for an empty read model"
    names = (
        projection.table_names
        if isinstance(projection, Declared)
        else [t.name for t in projection.tables]
    )
    for name in names:
        if not db.exists(name):
            return f"table {name} is missing"
    return None


def read_models_current(source: Head, db: ReadModels) -> bool:
    """True when ``catch_up(source, db)`` (all the declared projections, to the head) would
    find nothing to fold and nothing to rebuild."""
    stored = positions(db)
    size, _ = source.head()
    declared = declared_projections()
    if any(d.name not in stored or stored[d.name].last_seq < size for d in declared):
        return False
    return not any(stale_reason(source, d, stored[d.name], db) for d in declared)
