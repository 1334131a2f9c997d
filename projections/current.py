"""Whether the stored read models are current, judged without the replay driver.

A reading command asks this first (``ledger.app.governance.read_models``): when every declared
projection (``projections.registry.declared_projections``) has its ``projection_meta`` row at
the head of the log, of the declared version, with the hash the log holds at that seq, and all
its tables exist, there is nothing to fold, and ``projections.driver`` (which decodes payloads
to the catalog's pydantic models) is not imported. It is the judgment ``catch_up`` makes before
folding anything (a test checks the two agree); anything else is left to ``catch_up``.
"""

from __future__ import annotations

from typing import Protocol

from ledger.event.framing import ZERO_HASH
from ledger.store.base import ReadModels
from projections.projection import META_TABLE
from projections.registry import declared_projections


class Head(Protocol):
    """What the judgment reads of a log (any ``ledger.store.base.Store`` is one)."""

    def head(self) -> tuple[int, str]: ...

    def hash_at(self, seq: int) -> str: ...


def read_models_current(source: Head, db: ReadModels) -> bool:
    """True when ``catch_up(source, db)`` (all the declared projections, to the head) would
    find nothing to fold and nothing to rebuild."""
    if not db.exists(META_TABLE):
        return False
    rows = db.execute(f"SELECT name, version, last_seq, last_hash FROM {META_TABLE}")
    stored = {r[0]: (r[1], r[2], r[3]) for r in rows}
    size, _ = source.head()
    hashes: dict[int, str] = {}
    for d in declared_projections():
        if d.name not in stored:
            return False
        version, last_seq, last_hash = stored[d.name]
        if version != d.version or last_seq != size:
            return False
        if last_seq == 0:
            if last_hash != ZERO_HASH:
                return False
        else:
            if last_seq not in hashes:
                hashes[last_seq] = source.hash_at(last_seq)
            if hashes[last_seq] != last_hash:
                return False
        if not all(db.exists(name) for name in d.table_names):
            return False
    return True
