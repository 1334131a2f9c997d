"""The end of the log as an append sees it: kept by a store between appends so an append reads
nothing back from the log (SPEC §2.1 still holds: the store's write lock is taken before the
tip is trusted, and a tip is dropped when another writer has committed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger.tlog import merkle

KeyState = dict[str, Any]
"""A row of the key index: key_id, name, role, agent, revoked_seq."""


@dataclass(frozen=True)
class Tip:
    """The head (size, hash, ts), the Merkle frontier (``merkle.range_nodes(0, size)``) and
    the key states read so far (key id → state, None when known to be unregistered)."""

    size: int
    prev: str
    ts: str
    frontier: merkle.Frontier
    keys: dict[str, KeyState | None]
