"""Transparency-log commands: checkpoint, prove, verify-proof (docs/formats.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger.cli.context import Context, echo_json, json_option, pass_ctx
from ledger.errors import CheckpointError, InputError
from ledger.tlog.notes import parse_checkpoint, parse_vkey
from ledger.tlog.proofs import (
    prove_inclusion,
    sign_current_checkpoint,
    verify_event_proof,
    witness_request,
)


def _write(text: str, output: str | None, as_json: bool = False, **fields: object) -> None:
    """Print ``text``, or write it to ``output``; with ``as_json``, print one JSON object on
    stdout instead: ``fields``, the text and where it was written (``null``: not written)."""
    written = output if output not in (None, "-") else None
    if written is not None:
        tmp = Path(written + ".partial")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(written)
    if as_json:
        echo_json({**fields, "text": text, "output": written})
    elif written is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {written}", err=True)


def _checkpoint_fields(note: str) -> dict[str, object]:
    """Origin, size and root (hex) of a signed checkpoint note."""
    cp = parse_checkpoint(note[: note.index("\n\n") + 1])
    return {"origin": cp.origin, "size": cp.size, "root": cp.root.hex()}


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what}: cannot read {path} ({e})") from e


def _read_bytes(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{what}: cannot read {path} ({e.strerror})") from e


@click.command()
@click.option("--signer", required=True, help="Governor key that signs the checkpoint.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@json_option
@pass_ctx
def checkpoint(ctx: Context, signer: str, output: str | None, as_json: bool) -> None:
    """Sign a C2SP checkpoint of the log as it is now, and print it.

    Keep it somewhere the operator cannot write: later, `govledger verify --checkpoint FILE`
    detects truncation, rewriting and forks against it.
    """
    note = sign_current_checkpoint(ctx.ledger(), ctx.signer(signer))
    _write(note, output, as_json, **_checkpoint_fields(note))


@click.command()
@click.argument("seq", type=click.IntRange(min=1), required=False)
@click.option(
    "--signer", help="Sign a fresh checkpoint at the current size with this governor key."
)
@click.option(
    "--consistency",
    "old_checkpoint",
    type=click.Path(dir_okay=False),
    help="Print the C2SP tlog-witness body proving the log extends this checkpoint.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@json_option
@pass_ctx
def prove(
    ctx: Context,
    seq: int | None,
    signer: str | None,
    old_checkpoint: str | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Inclusion proof of event SEQ (a C2SP tlog-proof), or a consistency proof.

    The proof embeds the latest stored checkpoint covering SEQ (signing one with `root` when
    none does) and the event's canonical body, so anyone verifies it offline with
    `govledger verify-proof FILE --vkey VKEY` (get the vkey with `govledger keys vkey NAME`).
    """
    ledger = ctx.ledger()
    if old_checkpoint is not None:
        if seq is not None:
            raise InputError("give SEQ or --consistency, not both")
        note = _read(old_checkpoint, "--consistency")
        text = witness_request(ledger, note, signer=ctx.signer(signer or "root"))
        _write(text, output, as_json, kind="consistency")
        return
    if seq is None:
        raise InputError("missing SEQ (or --consistency FILE)")
    if signer is not None:
        text = prove_inclusion(ledger, seq, fresh_signer=ctx.signer(signer))
    else:
        from ledger.tlog.proofs import latest_checkpoint

        root = None if latest_checkpoint(ledger, seq) else ctx.signer("root")
        text = prove_inclusion(ledger, seq, root_signer=root)
    _write(text, output, as_json, kind="inclusion", seq=seq)


@click.command(name="verify-proof")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--vkey", required=True, help="The log's C2SP verifier key (govledger keys vkey NAME)."
)
@json_option
def verify_proof(file: str, vkey: str, as_json: bool) -> None:
    """Verify an inclusion proof offline: no database needed.

    Checks the checkpoint signature against VKEY, the Merkle inclusion proof against the
    checkpoint's root, and that the embedded event body is the event at that index.
    Exit 1 when anything fails.
    """
    # Bytes, not text: a proof that is not UTF-8 is a bad proof (exit 1), not a usage error.
    try:
        parse_vkey(vkey)
    except CheckpointError as e:
        # A verifier key that is not one is a usage error; a proof that fails it is exit 1.
        raise InputError(f"--vkey: {e.message}") from e
    data = sys.stdin.buffer.read() if file == "-" else _read_bytes(file, "proof")
    proven = verify_event_proof(data, vkey=vkey)
    body = proven.body
    if as_json:
        echo_json(
            {
                "ok": True,
                "seq": body["seq"],
                "type": body["type"],
                "hash": proven.hash,
                "origin": proven.checkpoint.origin,
                "size": proven.checkpoint.size,
                "root": proven.checkpoint.root.hex(),
                "event": body,
            }
        )
        return
    click.echo(
        f"ok: seq {body['seq']} ({body['type']}, {body['ts']}) is in {proven.checkpoint.origin} "
        f"at size {proven.checkpoint.size}"
    )
    click.echo(f"event hash {proven.hash}")


COMMANDS = [checkpoint, prove, verify_proof]
