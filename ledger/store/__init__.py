"""Where events live: the store interface and its implementations (SQLite; PostgreSQL with the
``postgres`` extra), and ``open_store`` choosing one by the ``--db`` value.

Imports ``ledger.event``, ``ledger.crypto``, ``ledger.tlog.merkle``; never projections, the CLI or
the application layer. ``Ledger`` is imported on first use, so importing the interface alone
(``ledger.store.base``) loads no store implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from ledger.store.sqlite import Ledger

if TYPE_CHECKING:
    from ledger.crypto.keyfiles import Signer

__all__ = [
    "Ledger",
    "check_new_store",
    "create_store",
    "is_postgres_url",
    "open_copy_target",
    "open_store",
]


def is_postgres_url(db: str) -> bool:
    """Whether ``db`` is a PostgreSQL URL (``postgresql://…``) rather than a SQLite path."""
    return db.startswith(("postgresql://", "postgres://"))


# The PostgreSQL store implements the event-log surface of ``Ledger`` (open, append, reads,
# Merkle nodes, keys, checkpoints, ``write()``, read models); it is returned as a ``Ledger``
# for the type checker.


def open_store(db: str) -> Ledger:
    """The ledger at ``db``: a ``postgresql://`` URL or a SQLite file path."""
    if is_postgres_url(db):
        from ledger.store.postgres import PgLedger

        return cast(Ledger, PgLedger.open(db))
    return Ledger.open(db)


def check_new_store(db: str) -> None:
    """Refuse to create a ledger where one already is."""
    if is_postgres_url(db):
        from ledger.store.postgres import PgLedger

        PgLedger.check_new(db)
    else:
        Ledger.check_new(db)


def create_store(db: str, *, origin: str, root: Signer, app_role: str | None = None) -> Ledger:
    """Create a ledger at ``db`` and append ``ledger.created``; ``app_role`` (PostgreSQL only)
    also creates the role that may only insert and read."""
    if is_postgres_url(db):
        from ledger.store.postgres import PgLedger

        return cast(Ledger, PgLedger.create(db, origin=origin, root=root, app_role=app_role))
    if app_role is not None:
        from ledger.errors import InputError

        raise InputError("--app-role is for a PostgreSQL --db (postgresql://...)")
    return Ledger.create(db, origin=origin, root=root)


def open_copy_target(db: str) -> Ledger:
    """The ledger at ``db`` to copy a log into: opened when it exists, else created with the
    schema and no event (``govledger copy``)."""
    import os

    if is_postgres_url(db):
        from ledger.store.postgres import PgLedger

        return cast(Ledger, PgLedger.open_or_create_empty(db))
    if os.path.exists(db) and os.path.getsize(db) > 0:
        return Ledger.open(db)
    return Ledger.create_empty(db)
