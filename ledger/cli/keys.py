"""`govledger keys`: key lifecycle, recorded as signed events (docs/formats.md)."""

from __future__ import annotations

import click

from ledger.cli.context import Context, echo_json, json_option, pass_ctx, print_table
from ledger.crypto.keyfiles import check_key_name
from ledger.errors import InputError
from ledger.store.sqlite import Draft, root_key_payload


@click.group()
def keys() -> None:
    """Create, list, revoke keys and print checkpoint verifier keys.

    \b
    Roles (README, "Keys"):
      governor  ledger, keys, policy, agents, approvals, grants, tier changes
      recorder  run lifecycle, tool calls, usage, decisions, guardrails, feedback
      agent     like recorder, but only for the one agent it is bound to (--agent)
    """


@keys.command("new")
@click.argument("name")
@click.option("--role", type=click.Choice(["governor", "recorder", "agent"]), required=True)
@click.option("--agent", "agent", help="The agent an agent-role key is bound to.")
@click.option("--signer", default="root", show_default=True, help="Governor key that records it.")
@json_option
@pass_ctx
def keys_new(
    ctx: Context, name: str, role: str, agent: str | None, signer: str, as_json: bool
) -> None:
    """Create key NAME (file NAME.pem, mode 0600) and register it as `key.registered`."""
    check_key_name(name)
    if (role == "agent") != (agent is not None):
        raise InputError("--agent is required for --role agent, and only for it")
    ledger = ctx.ledger()
    governor = ctx.signer(signer)
    if ctx.keyring.exists(name):
        raise InputError(f"key file {ctx.keyring.path(name)} already exists; choose another name")
    key = ctx.keyring.create(name)
    try:
        event = ledger.append(
            Draft("key.registered", root_key_payload(key, role, agent)), signer=governor
        )
    except BaseException:
        ctx.keyring.path(name).unlink(missing_ok=True)  # nothing half-written
        raise
    if as_json:
        echo_json(
            {
                "name": name,
                "key_id": key.key_id,
                "role": role,
                "agent": agent,
                "revoked": False,
                "seq": event.seq,
            }
        )
    else:
        click.echo(f"key {name} ({key.key_id}), role {role}, registered at seq {event.seq}")


@keys.command("list")
@json_option
@pass_ctx
def keys_list(ctx: Context, as_json: bool) -> None:
    """List the keys registered in the ledger."""
    rows = ctx.ledger().keys()
    if as_json:
        for k in rows:
            echo_json(
                {
                    "name": k["name"],
                    "key_id": k["key_id"],
                    "role": k["role"],
                    "agent": k["agent"],
                    "revoked": k["revoked_seq"] is not None,
                    "registered_seq": k["registered_seq"],
                    "revoked_seq": k["revoked_seq"],
                }
            )
        return
    print_table(
        None,
        ["name", "key id", "role", "agent", "registered", "revoked"],
        [
            [
                k["name"],
                k["key_id"],
                k["role"],
                k["agent"] or "",
                k["registered_seq"],
                k["revoked_seq"] or "",
            ]
            for k in rows
        ],
    )


@keys.command("revoke")
@click.argument("name")
@click.option("--reason", default="revoked by operator", show_default=True)
@click.option("--signer", default="root", show_default=True, help="Governor key that records it.")
@json_option
@pass_ctx
def keys_revoke(ctx: Context, name: str, reason: str, signer: str, as_json: bool) -> None:
    """Revoke key NAME: events it signs from now on are refused, and invalid in the log."""
    ledger = ctx.ledger()
    key = ledger.key_by_name(name)
    if key is None:
        raise InputError(f"no key named {name!r} is registered in this ledger")
    event = ledger.append(
        Draft("key.revoked", {"key_id": key["key_id"], "reason": reason}), signer=ctx.signer(signer)
    )
    if as_json:
        echo_json(
            {
                "name": name,
                "key_id": key["key_id"],
                "role": key["role"],
                "agent": key["agent"],
                "revoked": True,
                "seq": event.seq,
            }
        )
    else:
        click.echo(f"key {name} ({key['key_id']}) revoked at seq {event.seq}")


@keys.command("vkey")
@click.argument("name")
@json_option
@pass_ctx
def keys_vkey(ctx: Context, name: str, as_json: bool) -> None:
    """Print the C2SP verifier key of NAME for checkpoints (`<origin>+<id>+<key>`)."""
    from ledger.crypto.signing import b64decode_canonical
    from ledger.tlog.notes import format_vkey

    # From the public key registered in the log: an auditor needs no private key file.
    ledger = ctx.ledger()
    key = ledger.key_by_name(name)
    if key is None:
        raise InputError(f"no key named {name!r} is registered in this ledger")
    if key["role"] != "governor":
        raise InputError(
            f"key {name} is a {key['role']} key; checkpoints are signed by governor keys"
        )
    public_key = b64decode_canonical(key["public_key"], f"key {name}")
    vkey = format_vkey(name=ledger.origin, public_key=public_key)
    if as_json:
        echo_json({"name": name, "key_id": key["key_id"], "origin": ledger.origin, "vkey": vkey})
    else:
        click.echo(vkey)


COMMANDS = [keys]
