"""Transparency-log commands: checkpoint, prove, verify-proof (docs/formats.md)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import click

from ledger.cli.context import Context, add_witness_options, echo_json, json_option, pass_ctx
from ledger.errors import CheckpointError, InputError
from ledger.tlog.cosignatures import (
    CosignatureReport,
    WitnessKey,
    parse_witness_vkey,
    timestamp_text,
    witness_set,
)
from ledger.tlog.notes import parse_checkpoint, parse_vkey
from ledger.tlog.proofs import (
    prove_inclusion,
    sign_current_checkpoint,
    verify_event_proof,
    witness_request,
)

T = TypeVar("T")


def write_output(text: str, output: str | None, as_json: bool = False, **fields: object) -> None:
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


def read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what}: cannot read {path} ({e})") from e


def read_bytes(path: str, what: str) -> bytes:
    """The bytes of ``path`` (``-``: standard input)."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{what}: cannot read {path} ({e.strerror})") from e


def read_vkeys(values: Sequence[str], option: str, parse: Callable[[str], T]) -> list[T]:
    """Parse each vkey given to ``option``; ``@FILE`` stands for the vkeys in FILE, one a line
    (blank lines and lines starting with ``#`` skipped). A bad one is a usage error."""
    out: list[T] = []
    for value in values:
        lines: list[tuple[int | None, str]] = [(None, value)]
        if value.startswith("@"):
            text = read_text(value[1:], option)
            lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1)]
            lines = [(n, ln) for n, ln in lines if ln and not ln.startswith("#")]
        for n, line in lines:
            try:
                out.append(parse(line))
            except CheckpointError as e:
                where = option if n is None else f"{option} {value[1:]} line {n}"
                raise InputError(f"{where}: {e.message}") from e
    return out


def witness_policy(vkeys: Sequence[str], quorum: int | None) -> tuple[list[WitnessKey], int]:
    """The witnesses of ``--witness`` and the quorum (default: all), checked as usage."""
    keys = list(witness_set(read_vkeys(vkeys, "--witness", parse_witness_vkey)))
    if quorum is not None and not keys:
        raise InputError("--quorum needs --witness: the witnesses to count")
    if quorum is not None and quorum > len(keys):
        raise InputError(f"--quorum {quorum}: only {len(keys)} witness(es) given with --witness")
    return keys, len(keys) if quorum is None else quorum


def cosignature_fields(report: CosignatureReport | None) -> dict[str, object]:
    """``witnesses`` (each: name, key_id, vkey, cosigned, timestamp) and ``quorum``."""
    if report is None:
        return {"witnesses": [], "quorum": 0}
    return report.as_json()


def cosignature_summary(report: CosignatureReport) -> str:
    """``cosigned by 2 of 3 witnesses (quorum 2): w1 at T1, w2 at T2``."""
    who = ", ".join(f"{w.witness.name} at {timestamp_text(w.timestamp)}" for w in report.cosigned)
    return (
        f"cosigned by {len(report.cosigned)} of {len(report.witnesses)} witnesses "
        f"(quorum {report.quorum}): {who}"
    )


def now() -> int:
    """This machine's clock in POSIX seconds: cosignatures dated after it (by more than the
    allowed skew) are refused."""
    return int(time.time())


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
    write_output(note, output, as_json, **_checkpoint_fields(note))


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
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(dir_okay=False),
    help="Embed this checkpoint of the log, as it is: e.g. one with witness cosignatures.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@json_option
@pass_ctx
def prove(
    ctx: Context,
    seq: int | None,
    signer: str | None,
    old_checkpoint: str | None,
    checkpoint_file: str | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Inclusion proof of event SEQ (a C2SP tlog-proof), or a consistency proof.

    The proof embeds the latest stored checkpoint covering SEQ (signing one with `root` when
    none does) and the event's canonical body, so anyone verifies it offline with
    `govledger verify-proof FILE --vkey VKEY` (get the vkey with `govledger keys vkey NAME`).

    With `--checkpoint FILE` it embeds that checkpoint instead, once it is found to be this
    log's (its signature, and the root at its size) and to cover SEQ: append the lines of
    `govledger witness cosign` to a checkpoint, and the proof carries them to the auditor, who
    requires them with `verify-proof --witness`.
    """
    ledger = ctx.ledger()
    if checkpoint_file is not None and (old_checkpoint is not None or signer is not None):
        raise InputError(
            "--checkpoint embeds a given checkpoint: not with --consistency or --signer"
        )
    if old_checkpoint is not None:
        if seq is not None:
            raise InputError("give SEQ or --consistency, not both")
        note = read_text(old_checkpoint, "--consistency")
        text = witness_request(ledger, note, signer=ctx.signer(signer or "root"))
        write_output(text, output, as_json, kind="consistency")
        return
    if seq is None:
        raise InputError("missing SEQ (or --consistency FILE)")
    if checkpoint_file is not None:
        note = read_text(checkpoint_file, "--checkpoint")
        text = prove_inclusion(ledger, seq, checkpoint_note=note)
    elif signer is not None:
        text = prove_inclusion(ledger, seq, fresh_signer=ctx.signer(signer))
    else:
        from ledger.tlog.proofs import latest_checkpoint

        root = None if latest_checkpoint(ledger, seq) else ctx.signer("root")
        text = prove_inclusion(ledger, seq, root_signer=root)
    write_output(text, output, as_json, kind="inclusion", seq=seq)


@click.command(name="verify-proof")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--vkey", required=True, help="The log's C2SP verifier key (govledger keys vkey NAME)."
)
@add_witness_options
@json_option
def verify_proof(
    file: str, vkey: str, witness_vkeys: tuple[str, ...], quorum: int | None, as_json: bool
) -> None:
    """Verify an inclusion proof offline: no database needed.

    Checks the checkpoint signature against VKEY, the Merkle inclusion proof against the
    checkpoint's root, and that the embedded event body is the event at that index. With
    `--witness`, the checkpoint must also carry a valid cosignature from at least `--quorum`
    of those witnesses (default: all of them): that the witnesses saw this checkpoint, and
    that it extends every one they saw before, is what keeps the log from showing another
    history to someone else. A cosignature from a given witness that does not verify fails
    the proof, whatever the count. Exit 1 when anything fails.
    """
    # Bytes, not text: a proof that is not UTF-8 is a bad proof (exit 1), not a usage error.
    try:
        parse_vkey(vkey)
    except CheckpointError as e:
        # A verifier key that is not one is a usage error; a proof that fails it is exit 1.
        raise InputError(f"--vkey: {e.message}") from e
    witnesses, want = witness_policy(witness_vkeys, quorum)
    data = read_bytes(file, "proof")
    proven = verify_event_proof(
        data, vkey=vkey, witnesses=witnesses, quorum=want if witnesses else None, now=now()
    )
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
                **cosignature_fields(proven.cosignatures),
                "event": body,
            }
        )
        return
    click.echo(
        f"ok: seq {body['seq']} ({body['type']}, {body['ts']}) is in {proven.checkpoint.origin} "
        f"at size {proven.checkpoint.size}"
    )
    click.echo(f"event hash {proven.hash}")
    if proven.cosignatures is not None:
        click.echo(cosignature_summary(proven.cosignatures))


COMMANDS = [checkpoint, prove, verify_proof]
