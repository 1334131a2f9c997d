"""`govledger policy`: the governance policy in force, and recording a new one (docs/policy.md).

A policy is written in TOML and recorded as a `policy.set` event (a JSON object in the log)
with the next version and the SHA-256 of its RFC 8785 bytes. Field by field: docs/policy.md.
"""

from __future__ import annotations

import click

from ledger.app.governance import read_models, set_policy
from ledger.cli.context import Context, at_options, echo_json, json_option, pass_ctx, resolve_at
from projections.policy.document import read_policy_file
from projections.policy_toml import dump_toml
from projections.tiers.queries import clock, policy_in_force


@click.group()
def policy() -> None:
    """The governance policy: tier criteria, demotion, revocation, cooldown (docs/policy.md)."""


@policy.command("show")
@at_options
@json_option
@pass_ctx
def policy_show(ctx: Context, at_seq: int | None, as_of: str | None, as_json: bool) -> None:
    """The policy in force (now, or at `--at-seq` / `--as-of`) as TOML, the format `policy set`
    reads, headed by comments giving its version, digest and the seq it took force. Version 0
    is the shipped default, in force until the first `policy set`.

    \b
    govledger policy show > p.toml      edit p.toml, then:
    govledger policy set p.toml --signer root
    govledger policy show --json        {"version", "digest", "seq", "document"}
    """
    ledger = ctx.ledger()
    at = resolve_at(ledger, at_seq, as_of)
    with read_models(ledger) as db:
        seq = clock(db)[0] if at is None else min(at, clock(db)[0])
        pol = policy_in_force(db, seq)
    if as_json:
        echo_json(
            {
                "version": pol.version,
                "digest": pol.digest,
                "seq": pol.seq or None,
                "document": pol.document,
            }
        )
        return
    where = "shipped default" if pol.version == 0 else f"took force at seq {pol.seq}"
    click.echo(f"# govledger policy version {pol.version} ({where}), in force at seq {seq}")
    click.echo(f"# digest {pol.digest}")
    click.echo("# fields: docs/policy.md\n")
    click.echo(dump_toml(pol.document), nl=False)


@policy.command("set")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--signer", required=True, help="Governor key that signs the policy.set event.")
@json_option
@pass_ctx
def policy_set(ctx: Context, file: str, signer: str, as_json: bool) -> None:
    """Record the TOML policy FILE as a `policy.set` event (next version, with its digest).

    It is in force from its seq on: earlier tier changes stay judged by the earlier policy.
    """
    from projections.policy.document import unreachable_warning, validate

    document = read_policy_file(file)
    ledger = ctx.ledger()
    event = set_policy(ledger, document, ctx.signer(signer))
    warning = unreachable_warning(validate(document, file))
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)
    p = event.payload
    if as_json:
        echo_json(
            {"version": p["version"], "digest": p["digest"], "seq": event.seq, "hash": event.hash}
        )
        return
    click.echo(f"policy version {p['version']} recorded at seq {event.seq} (digest {p['digest']})")


COMMANDS = [policy]
