"""Where events live: the store interface (``ledger.store.base``) and its SQLite implementation
(``sqlite``: schema, append path, reads, read-model tables).

Imports ``ledger.event``, ``ledger.crypto``, ``ledger.tlog.merkle``; never projections, the CLI or
the application layer. ``Ledger`` is imported on first use, so importing the interface alone
(``ledger.store.base``) loads no store implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.store.sqlite import Ledger

__all__ = ["Ledger"]


def __getattr__(name: str) -> Any:
    if name == "Ledger":
        from ledger.store.sqlite import Ledger

        return Ledger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
