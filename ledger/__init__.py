"""govledger: a signed, hash-chained, append-only audit ledger for AI agents.

``from ledger import Recorder`` is the recording API (docs/api.md); it is loaded on first use,
so ``import ledger.<module>`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.recording import Recorder

__all__ = ["Recorder"]


def __getattr__(name: str) -> Any:
    if name == "Recorder":
        from ledger.recording import Recorder

        return Recorder
    raise AttributeError(f"module 'ledger' has no attribute {name!r}")
