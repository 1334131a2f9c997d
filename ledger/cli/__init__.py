"""The ``govledger`` command line: a thin shell over the library (docs/formats.md, README).

Every command opens the ledger, calls one library function and prints. Library errors are
mapped to exit codes in one place (``GovledgerGroup.invoke``): 1 integrity, 2 usage or input,
3 environment. No traceback reaches the user for a ``LedgerError``.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, NoReturn, cast

import click

from ledger.errors import LedgerError

COMMAND_MODULES: dict[str, str] = {
    "init": "core",
    "keys": "keys",
    "append": "core",
    "import": "core",
    "export": "core",
    "log": "core",
    "verify": "core",
    "runs": "runs",
    "replay": "runs",
    "metrics": "runs",
    "tiers": "tiers",
    "policy": "policy",
    "corrections": "corrections",
    "findings": "findings",
    "report": "report",
    "checkpoint": "proofs",
    "prove": "proofs",
    "verify-proof": "proofs",
    "witness": "witness",
    "demo": "demo",
    "serve": "service",
    "tokens": "service",
    "tiles": "service",
    "copy": "copy",
    "follow": "follow",
}
"""Command name → the ``ledger.cli`` module defining it (imported only when that command runs,
so a command does not pay for importing every other one)."""

COMMAND_HELP: dict[str, str] = {
    "init": "Create a ledger and its root governor key `root`.",
    "keys": "Create, list, revoke keys and print checkpoint verifier keys.",
    "append": "Append one signed event; prints its seq and hash.",
    "import": "Append events from a JSON Lines file, all or nothing.",
    "export": "Export events as JSON Lines (verifiable with `verify --file`), CloudEvents, OTLP or AAT.",
    "log": "List events, oldest first (`--json`: one full event per line).",
    "verify": "Verify integrity: framing, hashes, chain, seq, signatures, key authorization.",
    "runs": "Audit runs: state, timeline, findings (read models rebuilt by replay).",
    "replay": "Rebuild the read models from the log.",
    "metrics": "Agent metrics: runs, compliance and streaks, violations, tokens, cost, failure "
    "classes (`--json`: one agent per line).",
    "tiers": "Autonomy tiers T0–T4: state, due changes, recording them, history, explanations.",
    "policy": "The governance policy: tier criteria, demotion, revocation, cooldown "
    "(docs/policy.md).",
    "corrections": "Emerged correction patterns: user corrections clustered per agent by topic "
    '(`--json`: one pattern per line, {"agent", "name", "count", "first_seq", "last_seq", '
    '"examples", ...}).',
    "findings": "Every finding of the log in seq order: run checks, reliability signals, "
    "guardrails and tier checks (`unjustified_tier_change`), with the read model each comes "
    "from.",
    "report": "One self-contained HTML audit report: verdict, findings, tiers, runs, keys, "
    "policies.",
    "checkpoint": "Sign a C2SP checkpoint of the log as it is now, and print it.",
    "prove": "Inclusion proof of event SEQ (a C2SP tlog-proof), or a consistency proof.",
    "verify-proof": "Verify an inclusion proof offline: no database needed.",
    "witness": "Witness cosignatures: witness keys, cosigning checkpoints (by hand or over "
    "HTTP), quorums.",
    "demo": "Build a sample ledger at --db and show what to look at next.",
    "serve": "Serve the ledger over HTTP: appends with bearer tokens, reads, proofs, C2SP tiles.",
    "tokens": "Bearer tokens of the service: create (printed once), list, revoke.",
    "tiles": "Write the log as static C2SP tlog-tiles (checkpoint, tile/…, tile/entries/…) to "
    "DIRECTORY.",
    "copy": "Copy the log at SRC into DST (SQLite paths or postgresql:// URLs).",
    "follow": "Print new events as they are appended (JSON Lines), until interrupted.",
}
"""Command name → its one-line help, as its own docstring has it (a test keeps them equal), so
``govledger --help`` lists the commands without importing their modules and the library."""


class GovledgerGroup(click.Group):
    """The root group: loads commands lazily and maps ``LedgerError`` to its exit code and a
    one-line message."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMAND_MODULES)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help`` from ``COMMAND_HELP``: no command module is imported."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [
            (n, click.Command(n, help=COMMAND_HELP[n]).get_short_help_str(limit)) for n in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        try:
            module = importlib.import_module(f"ledger.cli.{module_name}")
        except ModuleNotFoundError as e:
            if e.name != f"ledger.cli.{module_name}":
                raise
            return None
        for command in module.COMMANDS:
            if command.name == cmd_name:
                return cast(click.Command, command)
        return None

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Environment variables are checked before any command module is imported (some read
        # theirs at import) and before anything is read or written.
        from ledger.settings import check_environment

        try:
            check_environment()
        except LedgerError as e:
            _fail(e)
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as e:
            if e.option_name not in GLOBAL_OPTIONS:
                raise
            raise click.UsageError(
                f"{e.option_name} is a global option: it goes before the command "
                f"(govledger {e.option_name} {GLOBAL_OPTIONS[e.option_name]} "
                f"{' '.join(_command_words(e.ctx))} ...)",
                ctx=e.ctx,
            ) from e
        except LedgerError as e:
            _fail(e)
        except KeyboardInterrupt:
            click.echo(
                "error: interrupted; nothing half-written (each write is one transaction)", err=True
            )
            sys.exit(130)
        except BrokenPipeError:
            # The reader went away (`| head`): not a failure. Later writes, and the
            # interpreter's last flush of stdout, go to /dev/null instead of failing again.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):
                pass  # stdout is not a file (a test runner's buffer): nothing to redirect
            sys.exit(0)
        except UnicodeEncodeError as e:
            # An argument that is not valid UTF-8 reaches us with surrogate escapes.
            click.echo(f"error: an argument or value is not valid UTF-8 ({e.reason})", err=True)
            sys.exit(2)


GLOBAL_OPTIONS = {"--db": "PATH", "--keys": "DIR"}
"""The root group's options, which a user may put after the command by mistake."""


def _command_words(ctx: click.Context | None) -> list[str]:
    """The command words of ``ctx`` (``runs list``), without the program name."""
    words: list[str] = []
    while ctx is not None and ctx.parent is not None:
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return words


def _fail(e: LedgerError) -> NoReturn:
    """The one place a library error becomes a message and an exit code."""
    click.echo(f"error: {e.message}", err=True)
    sys.exit(e.exit_code)


@click.group(cls=GovledgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="GOVLEDGER_DB",
    default="govledger.db",
    show_default=True,
    metavar="PATH|URL",
    help="The ledger database: a SQLite file or a postgresql:// URL. Env: GOVLEDGER_DB.",
)
@click.option(
    "--keys",
    "keys_dir",
    envvar="GOVLEDGER_KEYS",
    default=None,
    metavar="DIR",
    help="Directory of private key files [default: ~/.govledger/keys]. Env: GOVLEDGER_KEYS.",
)
@click.version_option(package_name="govledger")
@click.pass_context
def main(ctx: click.Context, db: str, keys_dir: str | None) -> None:
    """govledger: a signed, append-only audit ledger for AI agents.

    Every agent action is a signed, hash-chained event in an append-only log. Projections
    rebuild run state, metrics and autonomy tiers (T0–T4) by replay, and anyone holding the
    log can re-check them offline.

    \b
    Start here:
      govledger demo                      build a sample ledger and tour it
      govledger init --origin example.com/agents
      govledger append tool.called --signer rec --agent a1 --run r1 --payload @event.json
      govledger verify --trust ROOT_KEY_ID
      govledger runs list --non-compliant
      govledger tiers compute

    Exit codes: 0 ok, 1 integrity failure, 2 usage or input error (nothing written),
    3 environment error (missing ledger, locked database, key problems).
    """
    from ledger.cli.context import Context

    ctx.obj = Context(db=db, keys_dir=keys_dir)
    ctx.call_on_close(ctx.obj.close)
