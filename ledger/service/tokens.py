"""Bearer tokens of the HTTP service: who may append, as which key, for which agent and types.

A token is a random secret printed once by ``govledger tokens new``; the ledger's database keeps
only its SHA-256 in the ``service_tokens`` table (a side table like ``checkpoints``: tokens are
not events, and the log's guarantees do not depend on them; on PostgreSQL the application role
may read it, not write it, so tokens are made and revoked as the ledger's owner). The service looks the token up on every
request, so a revocation takes effect at once. A token appends only as its signer key, only for
its agent when it is bound to one, and only the event types it allows (all when none are given).
A token bound to an agent asks the gate and lessons only about that agent; asking the gate needs
the right to append ``guardrail.triggered``, the event that records a denial.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ledger.errors import InputError
from ledger.event.drafts import Draft
from ledger.event.envelope import check_type, format_ts
from ledger.store.sqlite import Ledger

TOKEN_PREFIX = "glt_"
"""Every token starts with this, so a leaked one is recognizable in logs and by scanners."""

TABLE = "service_tokens"
_COLUMN_DEFS = (
    "name TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, signer TEXT NOT NULL, agent TEXT, "
    "types TEXT, created TEXT NOT NULL, revoked TEXT"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class Forbidden(InputError):
    """A token that may not append this draft: another signer, agent or event type."""


@dataclass(frozen=True, slots=True)
class Token:
    """A stored token: never the secret itself, only what it allows."""

    name: str
    signer: str
    agent: str | None
    types: tuple[str, ...]
    created: str
    revoked: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "signer": self.signer,
            "agent": self.agent,
            "types": list(self.types),
            "created": self.created,
            "revoked": self.revoked,
        }

    def check(self, drafts: Sequence[tuple[Draft, str]]) -> None:
        """Raise ``Forbidden`` naming the first draft this token may not append."""
        for draft, where in drafts:
            if self.agent is not None and draft.agent != self.agent:
                raise Forbidden(
                    f"{where}: token {self.name} appends only for agent {self.agent!r}, "
                    f"not {draft.agent!r}"
                )
            if self.types and draft.type not in self.types:
                raise Forbidden(
                    f"{where}: token {self.name} may not append {draft.type} "
                    f"(allowed: {', '.join(self.types)})"
                )

    def check_agent(self, agent: str, what: str) -> None:
        """Raise ``Forbidden`` when this token is bound to another agent than ``agent``."""
        if self.agent is not None and agent != self.agent:
            raise Forbidden(
                f"{what}: token {self.name} is bound to agent {self.agent!r}; it may not ask "
                f"about {agent!r}"
            )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _ensure(ledger: Ledger) -> None:
    ledger.ensure_side_table(TABLE, _COLUMN_DEFS)


def new_token(
    ledger: Ledger, name: str, *, signer: str, agent: str | None, types: Sequence[str]
) -> str:
    """Store a new token named ``name`` and return its secret (shown once, never stored)."""
    if not _NAME.fullmatch(name):
        raise InputError(
            f"token name {name!r}: expected 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    key = ledger.key_by_name(signer)
    if key is None or key["revoked_seq"] is not None:
        state = "is revoked" if key is not None else "is not registered in this ledger"
        raise InputError(f"--signer: key {signer} {state}")
    clean = tuple(check_type(t.strip(), "--types") for t in types if t.strip())
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    _ensure(ledger)
    with ledger.write():
        if ledger.conn.execute("SELECT 1 FROM service_tokens WHERE name = ?", (name,)).fetchone():
            raise InputError(f"token {name} already exists (revoke it or choose another name)")
        ledger.conn.execute(
            "INSERT INTO service_tokens (name, sha256, signer, agent, types, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (name, digest(secret), signer, agent, ",".join(clean) or None, _now()),
        )
    return secret


def _row(r: tuple[str, str, str | None, str | None, str, str | None]) -> Token:
    return Token(r[0], r[1], r[2], tuple(r[3].split(",")) if r[3] else (), r[4], r[5])


_COLUMNS = "name, signer, agent, types, created, revoked"


def list_tokens(ledger: Ledger) -> list[Token]:
    _ensure(ledger)
    rows = ledger.conn.execute(f"SELECT {_COLUMNS} FROM service_tokens ORDER BY name").fetchall()
    return [_row(r) for r in rows]


def revoke_token(ledger: Ledger, name: str) -> None:
    _ensure(ledger)
    with ledger.write():
        row = ledger.conn.execute(
            "SELECT revoked FROM service_tokens WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            raise InputError(f"no token named {name}")
        if row[0] is None:
            ledger.conn.execute(
                "UPDATE service_tokens SET revoked = ? WHERE name = ?", (_now(), name)
            )


def lookup(ledger: Ledger, secret: str) -> Token | None:
    """The unrevoked token whose secret is ``secret`` (None: unknown or revoked). The table
    exists: the service creates it at start (``ensure_table``)."""
    row = ledger.conn.execute(
        f"SELECT {_COLUMNS} FROM service_tokens WHERE sha256 = ? AND revoked IS NULL",
        (digest(secret),),
    ).fetchone()
    return None if row is None else _row(row)


def ensure_table(ledger: Ledger) -> None:
    """Create the tokens table if this ledger has none yet (the service does at start)."""
    _ensure(ledger)


def _now() -> str:
    return format_ts(datetime.now(UTC))
