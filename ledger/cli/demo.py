"""`govledger demo`: build a sample ledger and walk a newcomer through it (docs: README tour)."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
from collections import Counter
from pathlib import Path

import click

from ledger.cli.context import Context, pass_ctx, print_table
from ledger.event.envelope import Event
from ledger.sample.demo import CAST, MIN_EVENTS, ROUNDS, DemoResult, beside, build_demo
from ledger.store import check_new_store, is_postgres_url

COMMAND_WIDTH = 50
"""Width of the commands after ``govledger [--db …]`` up to the aligned comments."""
CHARACTERS = {
    "careful": "never breaks a rule, rarely fails",
    "sloppy": "collects warnings, nothing critical",
    "reckless": "breaks critical rules",
    "ordinary": "now and then a slip",
}


@click.command()
@click.option(
    "--events",
    type=click.IntRange(min=MIN_EVENTS, max=2_000_000),
    default=6000,
    show_default=True,
    help=f"How many generated events (in {ROUNDS} rounds).",
)
@click.option(
    "--agents",
    type=click.IntRange(min=len(CAST), max=1000),
    default=6,
    show_default=True,
    help="How many agents.",
)
@click.option(
    "--seed",
    type=int,
    default=7,
    show_default=True,
    help="Seed of the synthetic workload (same seed, same story).",
)
@pass_ctx
def demo(ctx: Context, events: int, agents: int, seed: int) -> None:
    """Build a sample ledger at --db and show what to look at next.

    \b
    It creates the ledger (origin demo.govledger.local/<random>), a root governor key and a
    recorder key in a key directory of its own beside the ledger (<db>.keys, unless --keys
    or GOVLEDGER_KEYS names one), records a demo policy (low bars, no time at a tier),
    then a synthetic workload: agents registered with contracts, runs planned, approved or
    rejected, tool calls, usage and costs, decisions, violations and failures, user
    corrections. The first three agents are a careful, a sloppy and a reckless one. After
    each round of the workload a governor records the tier changes due (promotions,
    demotions, revocations) as signed events, approving the first promotion that needs a
    human decision; finally it signs a checkpoint. Nothing here is special to the demo: every
    step is a command you can run yourself. The ledger must not exist yet.
    """
    check_new_store(ctx.db)
    source = click.get_current_context().find_root().get_parameter_source("keys_dir")
    if source in (None, click.core.ParameterSource.DEFAULT):
        # The demo's keys stay apart from the user's own: a later `init` or `keys new` in the
        # default key directory must not find (and silently reuse) the demo's `root`.
        ctx.keys_dir = demo_keys_dir(ctx.db)
    origin = f"demo.govledger.local/{secrets.token_hex(3)}"
    click.echo(
        f"building a sample ledger at {shown(ctx.db)} ({events} events, {agents} agents)…",
        err=True,
    )
    result = build_demo(ctx.db, ctx.keyring, origin=origin, events=events, agents=agents, seed=seed)
    _tour(ctx, result, events)


def shown(db: str) -> str:
    """``--db`` as messages show it: a PostgreSQL URL with its password hidden."""
    if is_postgres_url(db):
        from ledger.store.postgres import redact

        return redact(db)
    return db


def demo_keys_dir(db: str) -> str:
    """The demo's own key directory, beside its database (a PostgreSQL database's: named after
    it, in the working directory)."""
    return str(beside(db, ".keys")) if is_postgres_url(db) else f"{db}.keys"


def program() -> str:
    """How to run the govledger that is running now, as a user types it: ``govledger`` when
    that name on PATH is this program (or when it was not started as a ``govledger`` script,
    e.g. ``python -m``), else its path (``.venv/bin/govledger`` relative to the working
    directory, or absolute), so the tour's commands work as printed before a venv is active."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) != "govledger":
        return "govledger"
    exe = os.path.abspath(argv0)
    found = shutil.which("govledger")
    if found is not None and os.path.samefile(found, exe):
        return "govledger"
    rel = os.path.relpath(exe)
    return exe if rel.startswith("..") else rel


def _change(e: Event) -> str:
    p = e.payload
    what = f"{e.type.removeprefix('tier.')} T{p['from']} → T{p['to']}"
    ev = p["evidence"]
    if e.type == "tier.promoted":
        why = "approved by a governor" if ev.get("human_approval") else "every criterion met"
        return f"{what}: {why}"
    if e.type == "tier.demoted":
        return (
            f"{what}: {ev['window_violations']} of its last {ev['window_runs']} runs non-compliant"
        )
    return f"{what}: critical finding at seq {ev['critical_seq']}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _story(r: DemoResult, events: int) -> None:
    cast = ", ".join(
        f"{agent} is {character} ({CHARACTERS[character]})"
        for agent, character in r.characters.items()
        if character != "ordinary"
    )
    click.echo(f"The cast: {cast}; the others are ordinary ({CHARACTERS['ordinary']}).")
    click.echo(
        f"\nTier changes, recorded by `tiers apply` after each of {ROUNDS} rounds of about "
        f"{events // ROUNDS} events:"
    )
    width = max((len(e.agent or "") for e in r.tier_events), default=0)
    for e in r.tier_events:
        click.echo(f"  seq {e.seq:<6} {e.agent or '':<{width}}  {_change(e)}")
    n = Counter(e.type.removeprefix("tier.") for e in r.tier_events)
    click.echo(
        f"  {_plural(n['promoted'], 'promotion')}, {_plural(n['demoted'], 'demotion')}, "
        f"{_plural(n['revoked'], 'revocation')}"
    )
    if r.awaiting:
        waiting = ", ".join(f"{d.agent} T{d.from_tier} → T{d.to_tier}" for d in r.awaiting)
        click.echo(f"  awaiting a human decision: {waiting}")


def _tour(ctx: Context, r: DemoResult, events: int) -> None:
    # Repeat --db/--keys in the suggested commands only when they were given on the command
    # line (not by default or through GOVLEDGER_DB / GOVLEDGER_KEYS).
    q = shlex.quote
    given = ctx.db not in ("govledger.db", os.environ.get("GOVLEDGER_DB"))
    db = f"--db {q(shown(ctx.db))} " if given else ""
    given_keys = ctx.keys_dir and ctx.keys_dir != os.environ.get("GOVLEDGER_KEYS")
    keys = f"--keys {q(ctx.keys_dir or '')} " if given_keys else ""
    g = f"{q(program())} {db}{keys}".rstrip()
    click.echo(f"\nledger {shown(ctx.db)}: {r.size} events, origin {r.origin}")
    click.echo(f"root key {r.root_key_id} (keys in {ctx.keyring.directory})")
    click.echo(
        f"runs: {r.runs} ({r.non_compliant} not compliant); "
        f"correction patterns emerged: {r.patterns}\n"
    )
    _story(r, events)
    click.echo()
    print_table(
        "Agents now",
        ["agent", "character", "tier", "effective", "since seq", "finished runs"],
        [
            [
                a["agent"],
                r.characters.get(a["agent"], ""),
                f"T{a['tier']}",
                f"T{a['effective_tier']}",
                a["since_seq"],
                a["finished_runs"],
            ]
            for a in r.tiers
        ],
    )
    checkpoint = beside(ctx.db, ".checkpoint")
    proof = str(beside(ctx.db, ".event-42.tlog-proof"))  # beside the ledger too
    click.echo(
        f"\nA checkpoint of size {r.size} was saved to {checkpoint}: keep a copy somewhere "
        "the operator cannot write."
    )
    click.echo("\nWhat to look at next:")
    steps = [
        (f"{g} verify --trust {r.root_key_id}", "check every hash, link, signature and role"),
        (f"{g} runs list --non-compliant --limit 20", "runs that broke a rule, and which"),
    ]
    if r.example_run:
        why = "one run's timeline and findings"
        if r.example_run_cost:
            why = f"the run that cost {r.example_run_cost} its tier: timeline and findings"
        steps.append((f"{g} runs show {r.example_run}", why))
    steps += [
        (f"{g} findings --severity critical --limit 20", "critical findings of every check"),
        (f"{g} metrics", "per agent: runs, compliance, streaks, tokens, cost"),
        (f"{g} policy show", "the demo policy: the bars of each tier"),
        (f"{g} tiers show", "who holds which autonomy tier, and since when"),
    ]
    for change in ("demoted", "revoked", "promoted"):
        agent = r.agent_with(change)
        if agent:
            steps.append((f"{g} tiers history {agent}", f"each tier change of {agent}, re-judged"))
    climber = next((a for a, c in r.characters.items() if c == "careful"), None)
    if climber:
        steps.append((f"{g} tiers explain {climber}", "what the next tier still needs"))
    steps += [
        (f"{g} tiers compute", "changes due now (nothing is recorded)"),
    ]
    if r.patterns:  # the tour shows only commands that have something to show
        steps.append((f"{g} corrections", "what users keep correcting, per agent"))
    steps += [
        (f"{g} replay --check", "recompute every read model and tier decision from the log"),
        (f"{g} prove 42 -o {q(proof)}", "a proof that one event is in the log"),
        (
            f'{q(program())} verify-proof {q(proof)} --vkey "$({g} keys vkey root)"',
            "check it offline, with the log's verifier key",
        ),
        (
            f"{g} verify --trust {r.root_key_id} --checkpoint {q(str(checkpoint))}",
            "later: detect truncation or rewriting",
        ),
    ]
    if r.awaiting:
        d = r.awaiting[0]
        steps.append(
            (
                f"{g} tiers apply --signer root --approve {d.agent}",
                f"say yes to {d.agent} → T{d.to_tier} (records it)",
            )
        )
    report = Path("audit.html") if is_postgres_url(ctx.db) else Path(ctx.db).with_name("audit.html")
    steps.append(
        (
            f"{g} report --trust {r.root_key_id} -o {q(str(report))}",
            f"last: the whole audit in one HTML file, {report.name}: open it in a browser",
        )
    )
    # Align the comments, except after the odd long command (it would push every one out).
    width = min(max(len(c) for c, _ in steps), len(g) + COMMAND_WIDTH)
    for command, why in steps:
        click.echo(f"  {command:<{width}}   # {why}")


COMMANDS = [demo]
