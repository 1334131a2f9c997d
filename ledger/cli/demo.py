"""`govledger demo`: build a sample ledger and walk a newcomer through it (SPEC §5, issue 4)."""

from __future__ import annotations

import os
import secrets
from collections import Counter
from pathlib import Path

import click

from ledger.cli.context import Context, pass_ctx, print_table
from ledger.cli.demo_build import DemoResult, build_demo
from ledger.store import Ledger


@click.command()
@click.option(
    "--events",
    type=click.IntRange(min=500, max=2_000_000),
    default=6000,
    show_default=True,
    help="How many generated events (in two phases).",
)
@click.option(
    "--agents",
    type=click.IntRange(min=2, max=1000),
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
    recorder key in the key directory, records a demo policy, then a synthetic workload in two
    phases: agents registered with contracts, runs planned, approved or rejected, tool calls,
    usage and costs, decisions, some violations and failures, user corrections. After each
    phase it records the tier changes due (promotions, demotions, revocations) as signed
    events, then signs a checkpoint. Nothing here is special to the demo: every step is a
    command you can run yourself.
    """
    Ledger.check_new(ctx.db)
    origin = f"demo.govledger.local/{secrets.token_hex(3)}"
    click.echo(
        f"building a sample ledger at {ctx.db} ({events} events, {agents} agents)…", err=True
    )
    result = build_demo(ctx.db, ctx.keyring, origin=origin, events=events, agents=agents, seed=seed)
    _tour(ctx, result)


def _tour(ctx: Context, r: DemoResult) -> None:
    # Repeat --db/--keys in the suggested commands only when they were given on the command
    # line (not by default or through GOVLEDGER_DB / GOVLEDGER_KEYS).
    db = "" if ctx.db in ("govledger.db", os.environ.get("GOVLEDGER_DB")) else f"--db {ctx.db} "
    given_keys = ctx.keys_dir and ctx.keys_dir != os.environ.get("GOVLEDGER_KEYS")
    keys = f"--keys {ctx.keys_dir} " if given_keys else ""
    g = f"govledger {db}{keys}".rstrip()
    changes = Counter(e.type for e in r.tier_events)
    click.echo(f"\nledger {ctx.db}: {r.size} events, origin {r.origin}")
    click.echo(f"root key {r.root_key_id} (keys in {ctx.keyring.directory})")
    click.echo(
        f"tier changes recorded: {changes['tier.promoted']} promotions, "
        f"{changes['tier.demoted']} demotions, {changes['tier.revoked']} revocations"
        + (f"; {r.awaiting} promotions await a human decision" if r.awaiting else "")
    )
    click.echo(f"runs: {r.runs} ({r.non_compliant} not compliant); "
               f"correction patterns emerged: {r.patterns}\n")  # fmt: skip
    print_table("Agents now", ["agent", "tier", "effective", "since seq"],
                [[a["agent"], f"T{a['tier']}", f"T{a['effective_tier']}", a["since_seq"]]
                 for a in r.tiers])  # fmt: skip
    checkpoint = Path(ctx.db).with_suffix(".checkpoint")
    click.echo(f"\nA checkpoint of size {r.size} was saved to {checkpoint}: keep a copy somewhere "
               "the operator cannot write.")  # fmt: skip
    click.echo("\nWhat to look at next:")
    steps = [
        (f"{g} verify --trust {r.root_key_id}", "check every hash, link, signature and role"),
        (f"{g} runs list --non-compliant", "runs that broke a rule, and which"),
    ]
    if r.example_run:
        steps.append((f"{g} runs show {r.example_run}", "one run's timeline and findings"))
    steps += [
        (f"{g} tiers show", "who holds which autonomy tier, and since when"),
    ]
    if r.example_agent:
        steps += [
            (f"{g} tiers history {r.example_agent}", "each tier change and its evidence"),
            (f"{g} tiers explain {r.example_agent}", "what the next tier still needs"),
        ]
    steps += [
        (f"{g} tiers compute", "changes due now (nothing is recorded)"),
        (f"{g} corrections", "what users keep correcting, per agent"),
        (f"{g} replay --check", "recompute every read model and tier decision from the log"),
        (f"{g} prove 42 -o event-42.tlog-proof", "a proof that one event is in the log"),
        (f"{g} verify --checkpoint {checkpoint}", "detect truncation or rewriting later"),
    ]
    width = max(len(c) for c, _ in steps)
    for command, why in steps:
        click.echo(f"  {command:<{width}}   # {why}")


COMMANDS = [demo]
