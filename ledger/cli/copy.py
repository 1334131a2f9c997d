"""``govledger copy SRC DST``: copy a log between stores, verified, resumable."""

from __future__ import annotations

import click

from ledger.cli.context import echo_json, json_option, progress_bar
from ledger.exchange.copy import copy_log, verified_size
from ledger.store import open_copy_target, open_store


@click.command()
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@json_option
def copy(src: str, dst: str, as_json: bool) -> None:
    """Copy the log at SRC into DST (SQLite paths or postgresql:// URLs).

    The source is verified first (exit 1 if it does not verify). DST is created when missing;
    when it holds events, they must be the source's first ones (else exit 1, naming the first
    seq that differs) and the copy resumes after them. Events are copied as they are (same
    seq, hash and signature), in chunks that each commit. Read models are not copied: rebuild
    them with `govledger replay` on the destination.
    """
    with open_store(src) as source:
        size = verified_size(source)  # before DST is created: a bad source leaves nothing
        with open_copy_target(dst) as target, progress_bar("copy", size) as advance:
            done = copy_log(source, target, size=size, progress=advance)
    if as_json:
        echo_json(
            {
                "already": done.already,
                "copied": done.copied,
                "size": done.size,
                "root": done.root.hex(),
            }
        )
        return
    click.echo(
        f"copied {done.copied} events ({done.already} already there): "
        f"{dst} has {done.size} events, root {done.root.hex()}"
    )


COMMANDS = [copy]
