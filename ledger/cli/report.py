"""`govledger report`: one self-contained HTML audit report (docs/report.md)."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

import click

from ledger.cli.context import Context, add_witness_options, at_options, pass_ctx, resolve_at
from ledger.errors import InputError, VerificationError


@click.command("report")
@click.option(
    "-o",
    "--output",
    "output",
    default="audit.html",
    show_default=True,
    metavar="FILE",
    help="Where to write the report (`-` for stdout).",
)
@click.option("--agent", help="Only this agent: its findings, runs, tier and patterns.")
@click.option(
    "--trust",
    "trust",
    multiple=True,
    metavar="KEY_ID",
    help="Root key id to pin the verdict to (repeatable), as `verify --trust`.",
)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A checkpoint the log must be consistent with, as `verify --checkpoint`; the report "
    "shows it (with --witness: who cosigned it).",
)
@add_witness_options
@at_options
@pass_ctx
def report(
    ctx: Context,
    output: str,
    agent: str | None,
    trust: tuple[str, ...],
    checkpoint_file: str | None,
    witness_vkeys: tuple[str, ...],
    quorum: int | None,
    at_seq: int | None,
    as_of: str | None,
) -> None:
    """One self-contained HTML audit report: verdict, findings, tiers, runs, keys, policies.

    \b
    govledger report                          write audit.html here
    govledger report -o audit.html --trust ROOT_KEY_ID
    govledger report --at-seq 500 --agent a1  the state at seq 500, one agent
    govledger report --checkpoint cp.txt --witness @witnesses.txt --quorum 2

    The file has inline CSS and SVG, no external reference, and no wall-clock time: the same
    log and options give the same bytes. It opens offline in any browser and prints. Big logs
    are aggregated (every list is capped, and says what it left out). The report is written
    even when verification finds problems; the command then exits 1. With --checkpoint the
    log must hold that checkpoint's tree, and with --witness the checkpoint must carry valid
    cosignatures from --quorum (default: all) of those witnesses, as `verify` checks them
    (their times are shown, not compared with a clock: the report reads none).
    """
    from ledger.cli.core import read_checkpoint_file
    from ledger.cli.proofs import witness_policy
    from ledger.report import ReportOptions, build_report

    for k in trust:
        if len(k) != 32 or any(c not in "0123456789abcdef" for c in k):
            raise InputError(f"--trust: {k!r} is not a key id (32 lowercase hex)")
    witnesses, want = witness_policy(witness_vkeys, quorum)
    if witnesses and checkpoint_file is None:
        raise InputError("--witness needs --checkpoint: the checkpoint whose cosignatures to check")
    checkpoint = read_checkpoint_file(checkpoint_file) if checkpoint_file else None
    ledger = ctx.ledger()
    at = resolve_at(ledger, at_seq, as_of)
    command = _command(ctx, output, agent, trust, at)
    if checkpoint_file:
        command += " --checkpoint " + shlex.quote(checkpoint_file)
        command += "".join(" --witness " + shlex.quote(w.vkey) for w in witnesses)
        command += f" --quorum {want}" if witnesses else ""
    options = ReportOptions(
        at,
        agent,
        tuple(sorted(set(trust))),
        command,
        checkpoint=checkpoint,
        witnesses=tuple(witnesses),
        quorum=want if witnesses else None,
    )
    html, data = build_report(ledger, options)
    if output == "-":
        sys.stdout.write(html)
        sys.stdout.flush()
    else:
        _write(Path(output), html)
        click.echo(
            f"report written to {output} ({len(html.encode()):,} bytes, "
            f"{data.header.size:,} events)"
        )
    if not data.verify.ok:
        raise VerificationError(
            f"verify found {data.verify.problem_count} problem(s); the report lists them"
        )


def _command(
    ctx: Context, output: str, agent: str | None, trust: tuple[str, ...], at: int | None
) -> str:
    """The command line that reproduces the report (``--as-of`` resolved to its seq)."""
    q = shlex.quote
    parts = ["govledger", "--db", q(ctx.db), "report", "-o", q(output)]
    if at is not None:
        parts += ["--at-seq", str(at)]
    if agent is not None:
        parts += ["--agent", q(agent)]
    for k in sorted(set(trust)):
        parts += ["--trust", k]
    return " ".join(parts)


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=directory)
    except OSError as e:
        raise InputError(f"-o: cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        # mkstemp makes the file private; a report is an ordinary file (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"-o: cannot write {path}: {e.strerror}") from e


COMMANDS = [report]
