"""The CLI's main-path tests again on PostgreSQL: the ``ledger`` fixture as a ``PgLedger``.

A module ``tests/test_postgres_cli_*.py`` imports the test functions of a SQLite CLI test
module together with that module's own fixtures, and this ``ledger`` in place of the SQLite
one of ``tests/conftest.py``: the same tests, the same assertions, on a fresh PostgreSQL
database each (``conftest.pg_url``). Tests that edit a SQLite file directly
are left out (their PostgreSQL counterparts are in ``tests/test_postgres_read_models.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.event.drafts import Draft
from ledger.store.sqlite import root_key_payload
from tests.conftest import ORIGIN, Cli, LedgerKeys

try:
    from ledger.store.postgres import PgLedger
except ImportError:  # pragma: no cover - test_postgres skipped the module already
    pass

__all__ = ["PgCli", "ledger", "pg_ready"]


@pytest.fixture
def ledger(pg_url: str, keys: LedgerKeys) -> Iterator[PgLedger]:
    """A ledger in a fresh PostgreSQL database: seq 1 ``ledger.created``, seq 2 the recorder
    key (as ``tests/conftest.py``'s SQLite ``ledger``); ``ledger.path`` is its URL."""
    lg = PgLedger.create(pg_url, origin=ORIGIN, root=keys.root)
    lg.append(
        Draft("key.registered", root_key_payload(keys.recorder, "recorder")), signer=keys.root
    )
    yield lg
    lg.close()


class PgCli(Cli):
    """``Cli`` on a PostgreSQL database: ``db`` is its URL (every command gets ``--db URL``)."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        super().__init__(tmp_path)
        self.db = url  # type: ignore[assignment]  # a URL where the SQLite tests have a path


def pg_ready(tmp_path: Path, pg_url: str) -> PgCli:
    """``conftest.ready`` on PostgreSQL: ``govledger init`` and a recorder key ``rec``."""
    cli = PgCli(tmp_path, pg_url)
    cli("init", "--origin", ORIGIN)
    cli("keys", "new", "rec", "--role", "recorder")
    return cli
