"""Where events live: the store interface and its SQLite implementation (schema, append path, reads).

Imports ``ledger.event``, ``ledger.crypto``, ``ledger.tlog.merkle``; never projections, the CLI or the application layer.
"""

from ledger.store.sqlite import Ledger

__all__ = ["Ledger"]
