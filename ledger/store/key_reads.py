"""Key look-ups every store answers the same way from its key index (``keys()``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ledger.errors import UnauthorizedWrite

if TYPE_CHECKING:
    from ledger.crypto.keyfiles import Signer


class KeyReads:
    """``require_governor`` and ``key_by_name`` over a store's ``keys()`` (oldest first)."""

    keys: Callable[[], list[dict[str, Any]]]
    """The store's key index, oldest registration first (each store defines it)."""

    def require_governor(self, signer: Signer, what: str) -> None:
        """Refuse (exit 2) unless ``signer`` is a registered, unrevoked governor key."""
        for k in self.keys():
            if k["key_id"] == signer.key_id:
                if k["revoked_seq"] is not None:
                    raise UnauthorizedWrite(
                        f"key {signer.name} was revoked at seq {k['revoked_seq']}"
                    )
                if k["role"] != "governor":
                    raise UnauthorizedWrite(
                        f"key {signer.name} is a {k['role']} key; {what} are signed by governor keys"
                    )
                return
        raise UnauthorizedWrite(
            f"key {signer.name} ({signer.key_id}) is not registered in this ledger"
        )

    def key_by_name(self, name: str) -> dict[str, Any] | None:
        """The newest key registered under ``name`` (unrevoked ones first)."""
        named = [k for k in self.keys() if k["name"] == name]
        active = [k for k in named if k["revoked_seq"] is None]
        return (active or named)[-1] if named else None
