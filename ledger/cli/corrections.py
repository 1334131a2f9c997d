"""`govledger corrections`: emerged correction patterns, and what an agent should be told.

docs/corrections.md. Only the corrections read model is caught up (or, with
`--at-seq` / `--as-of`, rebuilt as it stood then in a scratch database): a pattern shows from the
correction that made it emerge, never earlier.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ledger.cli.context import (
    PAGE,
    Context,
    at_options,
    echo_json,
    echo_more,
    json_option,
    pass_ctx,
    print_table,
    resolve_at,
)
from ledger.errors import InputError
from ledger.store.base import ReadModels, Store
from projections import CORRECTIONS
from projections.corrections.queries import (
    Pattern,
    count_patterns,
    iter_patterns,
    learned_examples,
)
from projections.driver import build_at, catch_up


@contextmanager
def _read_model(ledger: Store, at: int | None) -> Iterator[ReadModels]:
    size, _ = ledger.head()
    if at is None or at >= size:
        db = ledger.read_models()
        catch_up(ledger, db, projections=[CORRECTIONS])
        yield db
        return
    with build_at(ledger, at, projections=[CORRECTIONS]) as db:
        yield db


def _cell(p: Pattern) -> str:
    return " | ".join(p.examples)


@click.command()
@click.option("--agent", help="Only this agent's patterns.")
@click.option(
    "--topic",
    metavar="TOPIC",
    help="With --agent: print the learned examples to prepend to the agent's next "
    "prompt about TOPIC (a topic, a pattern name or free text); nothing when no "
    "pattern has emerged for it.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help=f"At most N patterns, by agent then emergence [table default: {PAGE}; --json: all].",
)
@at_options
@json_option
@pass_ctx
def corrections(
    ctx: Context,
    agent: str | None,
    topic: str | None,
    limit: int | None,
    at_seq: int | None,
    as_of: str | None,
    as_json: bool,
) -> None:
    """Emerged correction patterns: user corrections clustered per agent by topic (`--json`:
    one pattern per line, {"agent", "name", "count", "first_seq", "last_seq", "examples", ...}).

    The table shows one page (the first N patterns by agent then emergence, default 50) and
    says how many more there are; `--json` streams every pattern (or the first `--limit N`).
    """
    if topic is not None and agent is None:
        raise InputError("--topic needs --agent")
    ledger = ctx.ledger()
    with _read_model(ledger, resolve_at(ledger, at_seq, as_of)) as db:
        if topic is not None:
            assert agent is not None
            examples = learned_examples(db, agent, topic)
            if as_json:
                echo_json({"agent": agent, "topic": topic, "examples": examples})
            else:
                for e in examples:
                    click.echo(e)
            return
        if as_json:
            shown = False
            for p in iter_patterns(db, agent, limit=limit):
                echo_json(p.as_json())
                shown = True
            if not shown:
                _none_emerged(agent)
            return
        found = list(iter_patterns(db, agent, limit=limit or PAGE))
        total = count_patterns(db, agent) if len(found) == (limit or PAGE) else len(found)
    if not found:
        _none_emerged(agent)
        return
    print_table(
        None,
        ["agent", "pattern", "count", "seqs", "emerged", "examples"],
        [
            [p.agent, p.name, p.count, f"{p.first_seq}–{p.last_seq}", p.emerged_seq, _cell(p)]
            for p in found
        ],
    )
    echo_more("pattern(s)", len(found), total, "by agent then emergence")


def _none_emerged(agent: str | None) -> None:
    """Nothing matched: nothing on stdout (exit 0), a note on stderr."""
    click.echo(
        "no correction pattern has emerged" + (f" for agent {agent}" if agent else ""), err=True
    )


COMMANDS = [corrections]
