"""Shared CLI plumbing: the context object, output helpers, progress bars."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ledger.crypto.keyfiles import KeyRing, Signer
from ledger.errors import InputError
from ledger.event.canonical import canonical
from ledger.event.envelope import Event, normalize_time
from ledger.store import open_store
from ledger.store.sqlite import Ledger

if TYPE_CHECKING:
    # rich is imported where output is drawn: a command printing JSON does not load it.
    from rich.console import Console
    from rich.progress import Progress


@dataclass
class Context:
    """What every command gets: where the ledger and the keys are."""

    db: str
    keys_dir: str | None
    _ledger: Ledger | None = field(default=None, repr=False)

    @property
    def keyring(self) -> KeyRing:
        return KeyRing(self.keys_dir)

    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = open_store(self.db)
        return self._ledger

    def close(self) -> None:
        """Close the ledger opened by a command (its server connection, for PostgreSQL)."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    def signer(self, name: str) -> Signer:
        return self.keyring.load(name)


pass_ctx = click.make_pass_decorator(Context)

PAGE = 50
"""Rows a listing's table shows when no ``--limit`` is given (``--json`` lists them all)."""


def echo_more(noun: str, shown: int, total: int, order: str) -> None:
    """The closing line of a listing's table: how many more match and how to see them."""
    if total > shown:
        click.echo(
            f"{total - shown} more {noun} not shown (first {shown} {order}); "
            "raise --limit, or use --json to see them all"
        )


def plural(n: int, word: str) -> str:
    """``1 event``, ``2 events``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine output: JSON on stdout."
)


def at_options(f: Any) -> Any:
    """``--at-seq N`` and ``--as-of TS``: time travel (both inclusive)."""
    f = click.option(
        "--as-of", "as_of", metavar="TS", help="State as of this time (RFC 3339, inclusive)."
    )(f)
    f = click.option(
        "--at-seq",
        "at_seq",
        type=click.IntRange(min=0),
        metavar="N",
        help="State as of this seq (inclusive).",
    )(f)
    return f


def resolve_at(ledger: Ledger, at_seq: int | None, as_of: str | None) -> int | None:
    """Turn ``--at-seq`` / ``--as-of`` into one seq (None: now)."""
    if at_seq is not None and as_of is not None:
        raise InputError("--at-seq and --as-of cannot be used together")
    if as_of is not None:
        seq = ledger.seq_at_time(normalize_time(as_of, "--as-of"))
        if seq == 0 and ledger.size > 0:
            first = next(iter(ledger.iter_rows(to_seq=1)))[2]
            click.echo(
                f"note: --as-of {as_of} is before the log's first event ({first}): "
                "nothing had been recorded yet",
                err=True,
            )
        return seq
    return at_seq


def echo_event(event: Event) -> None:
    """One event as docs/formats.md prints it: the RFC 8785 form of the full envelope and a newline
    (byte-identical to its `export` line)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(canonical(event.envelope()) + b"\n")
    sys.stdout.buffer.flush()


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, sort_keys=False))


def stdout_console() -> Console:
    from rich.console import Console

    class _StdoutConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich exits with status 1 here; the CLI's one handler of a closed pipe exits 0.
            self.quiet = True
            raise BrokenPipeError

    # Piped output is not cut to 80 columns: tables keep one line per row for grep and less.
    # No emoji codes: a ``:name:`` in the ledger's text is printed as it is (and rich's table of
    # emoji codes is not loaded for every line holding a colon).
    width = None if sys.stdout.isatty() else 200
    return _StdoutConsole(soft_wrap=False, highlight=False, emoji=False, width=width)


def stderr_console() -> Console:
    """A console on stderr, laid out as ``stdout_console``'s (for reports beside an output)."""
    from rich.console import Console

    width = None if sys.stderr.isatty() else 200
    return Console(stderr=True, soft_wrap=False, highlight=False, emoji=False, width=width)


def print_table(
    title: str | None, columns: list[str], rows: list[list[Any]], *, err: bool = False
) -> None:
    """A table for people, on stdout (``err``: on stderr, when stdout carries the output)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    (stderr_console() if err else stdout_console()).print(table)


class ProgressBar:
    """A progress bar on stderr for long work (verify, replay, import, export).

    Shown only when stderr is a terminal and the work is large; ``start(total)`` may come after
    the bar is entered (import learns its size after validating the file).
    """

    MIN_TOTAL = 5000

    def __init__(self, label: str, total: int | None = None, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.progress: Progress | None = None
        self.task: Any = None
        self.total = total

    def __enter__(self) -> ProgressBar:
        if self.total is not None:
            self.start(self.total)
        return self

    def start(self, total: int) -> None:
        if not self.enabled or total < self.MIN_TOTAL or self.progress is not None:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=total)

    def advance(self, n: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@contextmanager
def progress_bar(label: str, total: int | None, *, enabled: bool = True) -> Iterator[Any]:
    """``with progress_bar("verify", n) as advance: advance(k)``."""
    with ProgressBar(label, total, enabled=enabled) as bar:
        yield bar.advance


witness_options = (
    click.option(
        "--witness",
        "witness_vkeys",
        multiple=True,
        metavar="VKEY",
        help="Require cosignatures from this witness (its vkey, `govledger witness vkey`); "
        "repeat it, or give @FILE: one vkey a line.",
    ),
    click.option(
        "--quorum",
        type=click.IntRange(min=1),
        metavar="K",
        help="How many of the --witness witnesses must have cosigned [default: all].",
    ),
)


def add_witness_options(f: Any) -> Any:
    """``--witness VKEY`` (repeatable, or @FILE) and ``--quorum K``: parsed by
    ``ledger.cli.proofs.witness_policy``."""
    for option in reversed(witness_options):
        f = option(f)
    return f
