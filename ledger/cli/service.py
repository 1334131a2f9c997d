"""`govledger serve`, `tokens`, `tiles`: the HTTP service, its bearer tokens, static tiles
(docs/service.md)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ledger.cli.context import Context, echo_json, json_option, pass_ctx, print_table
from ledger.errors import EnvironmentProblem, InputError

F = TypeVar("F", bound=Callable[..., Any])


def server_options(port: int, max_body: int) -> Callable[[F], F]:
    """The options every server command has: ``--host``, ``--port`` (default ``port``),
    ``--max-body`` (default ``max_body``), and ``--tls-cert FILE --tls-key FILE``, both or
    neither (``tls_files``)."""
    options = (
        click.option(
            "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
        ),
        click.option(
            "--port",
            default=port,
            show_default=True,
            type=click.IntRange(0, 65535),
            help="Port to listen on (0: any free port; the one chosen is printed).",
        ),
        click.option(
            "--max-body",
            default=max_body,
            show_default=True,
            type=click.IntRange(min=1),
            metavar="BYTES",
            help="Largest request body accepted (413 above).",
        ),
        click.option(
            "--tls-cert",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="Serve HTTPS with this certificate chain (PEM); with --tls-key. Bearer tokens "
            "and cosignatures then never cross the network in clear.",
        ),
        click.option(
            "--tls-key",
            type=click.Path(dir_okay=False),
            metavar="FILE",
            help="The private key (PEM) of --tls-cert.",
        ),
    )

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def tls_files(cert: str | None, key: str | None) -> tuple[str, str] | None:
    """The TLS files of ``--tls-cert``/``--tls-key``, checked (None: plain HTTP)."""
    if (cert is None) != (key is None):
        raise InputError("--tls-cert and --tls-key go together: give both, or neither")
    if cert is None or key is None:
        return None
    from ledger.service.server import check_tls

    return check_tls(cert, key)


def listening(host: str, port: int) -> socket.socket:
    """The listening socket of a server command (cannot listen: exit 3)."""
    from ledger.service.server import listen

    try:
        return listen(host, port)
    except OSError as e:
        raise EnvironmentProblem(f"cannot listen on {host}:{port} ({e.strerror})") from e


def announce(command: str, host: str, sock: socket.socket, tls: tuple[str, str] | None) -> None:
    """``govledger COMMAND: listening on http(s)://HOST:PORT``, the line clients wait for."""
    scheme = "https" if tls else "http"
    click.echo(f"govledger {command}: listening on {scheme}://{host}:{sock.getsockname()[1]}")


@click.command()
@server_options(port=8080, max_body=4 * 1024 * 1024)
@click.option(
    "--checkpoint-signer",
    metavar="NAME",
    help="Governor key that signs a fresh checkpoint when the log has grown (at most once a "
    "second); without it /checkpoint serves the latest one signed with `govledger checkpoint`.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    metavar="N",
    help="Server processes sharing the port and the log, each with its own writer (one "
    "process is one core's worth of work). With more than one, a parent process starts them, "
    "replaces one that dies, and stops them on SIGINT or SIGTERM.",
)
@pass_ctx
def serve(
    ctx: Context,
    host: str,
    port: int,
    checkpoint_signer: str | None,
    max_body: int,
    workers: int,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Serve the ledger over HTTP: appends with bearer tokens, reads, proofs, C2SP tiles.

    \b
    POST /v1/events          one draft, a JSON array or JSON Lines (Authorization: Bearer)
    GET  /v1/events          ?from&to&run&agent&type&limit, JSON Lines of events
    GET  /v1/runs/RUN, /v1/findings, /v1/tiers, /v1/checkpoint, /v1/proof/SEQ,
         /v1/consistency?old=N, /checkpoint, /tile/..., /healthz, /metrics

    Concurrent appends are committed together (one transaction, one sync). Prints the
    address it listens on, then one JSON access-log line per request on stderr. Stops
    gracefully on SIGINT or SIGTERM: appends in flight are committed or failed whole.
    With --workers N on a SQLite file, the writers take turns through the lock file
    DB.serve.lock beside it. With --tls-cert and --tls-key it serves HTTPS (agents on other
    hosts send bearer tokens: give them TLS, here or in a proxy in front).
    """
    try:
        import uvicorn  # noqa: F401
    except ModuleNotFoundError as e:
        raise EnvironmentProblem(
            "serve needs the service extra: pip install 'govledger[serve]'"
        ) from e
    from ledger.service.app import Service, create_app
    from ledger.service.server import run
    from ledger.service.tokens import ensure_table

    tls = tls_files(tls_cert, tls_key)
    ledger = ctx.ledger()
    ensure_table(ledger)  # before listening: a store that cannot have tokens is exit 3 here
    if checkpoint_signer is not None:
        ledger.require_governor(ctx.signer(checkpoint_signer), "checkpoints")
    if workers > 1:
        _serve_processes(ctx, host, port, checkpoint_signer, max_body, workers, tls)
        return
    service = Service(
        ledger=ledger, keyring=ctx.keyring, checkpoint_signer=checkpoint_signer, max_body=max_body
    )
    sock = listening(host, port)
    announce("serve", host, sock, tls)
    run(create_app(service), sock, tls)


def _serve_processes(
    ctx: Context,
    host: str,
    port: int,
    checkpoint_signer: str | None,
    max_body: int,
    workers: int,
    tls: tuple[str, str] | None,
) -> None:
    """``serve --workers N``: the parent of N server processes (``ledger.service.workers``)."""
    from ledger.service.workers import LOCK_SUFFIX, Supervisor, WriterLock
    from ledger.store import is_postgres_url

    lock = None
    if not is_postgres_url(ctx.db):
        lock = ctx.db + LOCK_SUFFIX
        WriterLock(lock).close()  # a lock file that cannot be made is exit 3 here, not later
    ctx.close()  # the parent holds no connection to the store
    sock = listening(host, port)
    spec = {
        "db": ctx.db,
        "keys_dir": ctx.keys_dir,
        "checkpoint_signer": checkpoint_signer,
        "max_body": max_body,
        "lock": lock,
        "tls": tls,
    }
    supervisor = Supervisor(spec, sock, workers)
    supervisor.start()
    announce("serve", host, sock, tls)
    supervisor.run()


@click.group()
def tokens() -> None:
    """Bearer tokens of the service: create (printed once), list, revoke.

    Only a token's SHA-256 is stored, in the ledger file's `service_tokens` table (not an
    event). A token appends only as its signer key, only for its agent when bound to one,
    and only the event types it allows.
    """


@tokens.command("new")
@click.argument("name")
@click.option("--signer", required=True, help="The key the token's events are signed with.")
@click.option("--agent", help="Only events for this agent.")
@click.option(
    "--types", metavar="T,…", default="", help="Only these event types (comma-separated)."
)
@pass_ctx
def tokens_new(ctx: Context, name: str, signer: str, agent: str | None, types: str) -> None:
    """Create token NAME and print it (once: only its SHA-256 is kept)."""
    from ledger.service.tokens import new_token

    ctx.signer(signer)  # the service signs with this key: it must be readable here too
    secret = new_token(ctx.ledger(), name, signer=signer, agent=agent, types=types.split(","))
    click.echo(secret)
    click.echo(f"token {name} created; it is shown only this once", err=True)


@tokens.command("list")
@json_option
@pass_ctx
def tokens_list(ctx: Context, as_json: bool) -> None:
    """The tokens: name, signer, agent, types, created, revoked (never the secrets)."""
    from ledger.service.tokens import list_tokens

    found = list_tokens(ctx.ledger())
    if as_json:
        for t in found:
            echo_json(t.as_json())
        return
    print_table(
        "tokens",
        ["name", "signer", "agent", "types", "created", "revoked"],
        [
            [t.name, t.signer, t.agent, ",".join(t.types) or "all", t.created, t.revoked]
            for t in found
        ],
    )


@tokens.command("revoke")
@click.argument("name")
@pass_ctx
def tokens_revoke(ctx: Context, name: str) -> None:
    """Revoke token NAME: the service refuses it from its next request on."""
    from ledger.service.tokens import revoke_token

    revoke_token(ctx.ledger(), name)
    click.echo(f"token {name} revoked")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option(
    "--signer",
    help="Sign a fresh checkpoint with this governor key [default: root, when no "
    "stored checkpoint is at the current size].",
)
@pass_ctx
def tiles(ctx: Context, directory: str, signer: str | None) -> None:
    """Write the log as static C2SP tlog-tiles (checkpoint, tile/…, tile/entries/…) to DIRECTORY.

    The files are those `govledger serve` answers at the same paths, for any static host.
    """
    from ledger.service.tiles import write_tiles
    from ledger.tlog.notes import parse_unverified_checkpoint
    from ledger.tlog.proofs import latest_checkpoint, sign_current_checkpoint

    ledger = ctx.ledger()
    note = latest_checkpoint(ledger, ledger.size)
    if signer is not None or note is None:
        note = sign_current_checkpoint(ledger, ctx.signer(signer or "root"))
    size = parse_unverified_checkpoint(note).size
    if size == 0:
        raise InputError("the log is empty: no tiles to write")
    count = write_tiles(ledger, directory, checkpoint=note, size=size)
    click.echo(f"wrote checkpoint and {count} tiles of {size} events to {directory}")


COMMANDS = [serve, tokens, tiles]
