"""``govledger follow``: print events as they are appended, until interrupted."""

from __future__ import annotations

import click

from ledger.cli.context import Context, echo_event, pass_ctx
from ledger.exchange.follow import follow as follow_log


@click.command()
@click.option(
    "--from",
    "from_seq",
    type=click.IntRange(min=1),
    default=None,
    metavar="SEQ",
    help="Start at this seq (default: after the current head).",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Longest wait between reads (PostgreSQL also wakes up on each append).",
)
@pass_ctx
def follow(ctx: Context, from_seq: int | None, poll: float) -> None:
    """Print new events as they are appended (JSON Lines), until interrupted.

    Each event is printed as `export` writes it. Events are read by seq, so none is missed
    or printed twice; Ctrl-C ends it (exit 0).
    """
    ledger = ctx.ledger()
    start = ledger.size + 1 if from_seq is None else from_seq
    try:
        for event in follow_log(ledger, from_seq=start, poll=poll):
            echo_event(event)
    except KeyboardInterrupt:
        return


COMMANDS = [follow]
