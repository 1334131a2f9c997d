"""``govledger serve`` on a PostgreSQL database: a real server process on 127.0.0.1 and real
clients, as in ``test_service`` (whose tests run here again with ``ready`` on a fresh
database), plus what only PostgreSQL has: the service under the application role, which may
read the tokens table and not write it."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ORIGIN
from tests.pg_stores import PgCli, pg_ready
from tests.test_service import (
    Server,
    append_concurrently,
    assert_stored_and_verified,
    note,
    served,
    test_acknowledged_events_survive_sigkill_mid_load,
    test_bad_requests_get_their_status_and_write_nothing,
    test_concurrent_single_appends_make_one_contiguous_verified_log,
    test_one_request_error_fails_no_other,
    test_reads_filter_events_and_prove_them,
    test_revoking_a_token_takes_effect_at_once,
    test_shutdown_is_graceful_and_logs_one_line_per_request,
    test_tiles_recompute_the_signed_root,
    verified,
)

__all__ = [
    "served",
    "test_acknowledged_events_survive_sigkill_mid_load",
    "test_bad_requests_get_their_status_and_write_nothing",
    "test_concurrent_single_appends_make_one_contiguous_verified_log",
    "test_one_request_error_fails_no_other",
    "test_reads_filter_events_and_prove_them",
    "test_revoking_a_token_takes_effect_at_once",
    "test_shutdown_is_graceful_and_logs_one_line_per_request",
    "test_tiles_recompute_the_signed_root",
]

pytestmark = pytest.mark.slow


@pytest.fixture
def ready(tmp_path: Path, pg_url: str) -> PgCli:
    return pg_ready(tmp_path, pg_url)


def test_sixteen_clients_append_and_every_acknowledged_event_is_stored(
    served: tuple[PgCli, Server, str],
) -> None:
    cli, server, token = served
    clients, each = 16, 25
    acks = append_concurrently(
        server.url,
        token,
        clients,
        each,
        body=lambda c, i: [note(i, agent=f"a{c}")] if i % 2 else note(i, agent=f"a{c}"),
    )
    assert_stored_and_verified(cli, acks, clients * each)


def test_the_tokens_table_holds_only_digests(ready: PgCli, admin: Any) -> None:
    import psycopg

    token = ready("tokens", "new", "t", "--signer", "rec").stdout.strip()
    with psycopg.connect(str(ready.db)) as conn:
        rows = conn.execute("SELECT * FROM service_tokens").fetchall()
    assert len(rows) == 1 and token not in rows[0]
    assert token.startswith("glt_")


def test_the_service_runs_as_the_application_role(admin: Any, pg_url: str, tmp_path: Path) -> None:
    """The owner makes the ledger, the keys and the tokens; the service, connected as the
    application role, authenticates with them and appends; that role may not make tokens."""
    role = f"gl_app_{secrets.token_hex(4)}"
    owner = PgCli(tmp_path, pg_url)
    try:
        owner("init", "--origin", ORIGIN, "--app-role", role)
        owner("keys", "new", "rec", "--role", "recorder")
        as_app = PgCli(tmp_path, pg_url.replace("postgres@", f"{role}@", 1))
        early = as_app("serve", "--port", "0", ok=False)  # no tokens table yet
        assert early.exit_code == 3
        assert early.stderr.splitlines() == [
            f"error: {as_app.db}: cannot create the table service_tokens (permission denied "
            "for schema public): the ledger's owner creates it"
        ]
        token = owner("tokens", "new", "t", "--signer", "rec").stdout.strip()
        server = Server(as_app)
        try:
            assert server.post([note(1), note(2)], token).status_code == 201
            assert server.post(note(3), "glt_nope").status_code == 401
        finally:
            server.stop()
        refused = as_app("tokens", "new", "t2", "--signer", "rec", ok=False)
        assert refused.exit_code == 3
        assert "permission denied for table service_tokens" in refused.stderr
        assert as_app("tokens", "revoke", "t", ok=False).exit_code == 3
        assert verified(owner)["events"] == 4
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {pg_url.rsplit('/', 1)[1]} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {role}")
