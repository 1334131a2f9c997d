"""`govledger witness`: a witness's key, cosigning checkpoints, checking cosignatures
(docs/formats.md, "Witness cosignatures")."""

from __future__ import annotations

import os

import click

from ledger.cli.context import Context, add_witness_options, echo_json, json_option, pass_ctx
from ledger.cli.proofs import (
    cosignature_fields,
    cosignature_summary,
    now,
    read_bytes,
    witness_policy,
    write_output,
)
from ledger.cli.witness_http import witness_request, witness_serve
from ledger.cli.witness_keys import (
    followed_logs,
    log_option,
    state_option,
    witness_key,
    witness_signer,
    witness_state,
)
from ledger.cli.witness_keys import vkey_path as witness_vkey_path
from ledger.crypto.keyfiles import check_key_name
from ledger.errors import CheckpointError, InputError, KeyFileError
from ledger.tlog.cosignatures import (
    WITNESS_ALGORITHMS,
    WitnessKey,
    format_witness_vkey,
    parse_witness_vkey,
)
from ledger.tlog.notes import bad_key_name_char, parse_vkey, verify_checkpoint
from ledger.tlog.witness import witness_checkpoint


@click.group()
def witness() -> None:
    """Witness cosignatures: witness keys, cosigning checkpoints (by hand or over HTTP), quorums.

    A witness cosigns a log's checkpoint only once the log's key signed it and the log extends
    the last checkpoint the witness cosigned (a consistency proof). Auditors who require the
    cosignatures of witnesses they trust know the log shows everyone one history.

    \b
    Over HTTP (C2SP tlog-witness):
      govledger witness new w1 --name witness.example/w1     the witness: key w1.pem, its vkey
                                                             (--type ml-dsa-44: post-quantum)
      govledger witness serve --key w1 --log LOG_VKEY --port 8081
      govledger witness request http://127.0.0.1:8081 --witness W1_VKEY -o cp.txt   the log
    By hand, a file each way:
      govledger checkpoint --signer root -o cp.txt           the operator: the first one
      govledger witness cosign cp.txt --key w1 --log LOG_VKEY >> cp.txt      the witness
      govledger prove --consistency LAST_COSIGNED -o request.txt   each later one
      govledger witness cosign request.txt --key w1 --log LOG_VKEY --note -o cp2.txt
    Anyone:
      govledger prove 42 --checkpoint cp2.txt -o event-42.tlog-proof
      govledger verify-proof event-42.tlog-proof --vkey LOG_VKEY --witness W1_VKEY
      govledger witness verify cp2.txt --vkey LOG_VKEY --witness @witnesses.txt --quorum 2
      govledger verify --checkpoint cp2.txt --witness @witnesses.txt
    """


@witness.command("new")
@click.argument("key")
@click.option(
    "--name",
    required=True,
    help="The witness's name in its cosignatures, e.g. witness.example/w1 (no spaces, no '+').",
)
@click.option(
    "--type",
    "key_type",
    type=click.Choice(sorted(WITNESS_ALGORITHMS)),
    default="ed25519",
    show_default=True,
    help="The cosignature type: ed25519 (cosignature/v1, what most verifiers check today) or "
    "ml-dsa-44 (post-quantum, commits to NAME; its cosignature lines are about 3.3 KB).",
)
@json_option
@pass_ctx
def witness_new(ctx: Context, key: str, name: str, key_type: str, as_json: bool) -> None:
    """Create witness key KEY (KEY.pem, mode 0600, and KEY.vkey) and print its vkey.

    One key is one witness: its vkey binds the key to NAME and to its type (vkey type 04 for
    Ed25519, 06 for ML-DSA-44). Give the vkey to the auditors who are to require your
    cosignatures; `witness cosign` and `witness serve` sign with the key's type. No ledger is
    needed or touched.
    """
    check_key_name(key)
    ring = ctx.keyring
    vkey_path = witness_vkey_path(ring, key)
    if ring.exists(key) or vkey_path.exists():
        raise InputError(f"key {key!r} already exists in {ring.directory}; choose another name")
    if not name or bad_key_name_char(name) is not None:
        raise InputError(
            f"--name {name!r}: a witness name is not empty and holds no space, '+' or control "
            "character (e.g. witness.example/w1)"
        )
    if key_type == "ml-dsa-44" and len(name.encode()) > 255:
        raise InputError(
            f"--name: an ML-DSA-44 witness name is at most 255 bytes, found {len(name.encode())}"
        )
    private_key = ring.create_witness_key(key, key_type)
    vkey = format_witness_vkey(
        name=name,
        public_key=private_key.public_key().public_bytes_raw(),
        signature_type=WITNESS_ALGORITHMS[key_type],
    )
    tmp = vkey_path.with_suffix(".partial")
    try:
        tmp.write_text(vkey + "\n", encoding="utf-8")
        os.replace(tmp, vkey_path)
    except OSError as e:
        ring.path(key).unlink(missing_ok=True)  # nothing half-written
        raise KeyFileError(f"cannot write {vkey_path}: {e.strerror}") from e
    _echo_key(key, parse_witness_vkey(vkey), as_json)


def _echo_key(key: str, w: WitnessKey, as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "key": key,
                "name": w.name,
                "type": w.algorithm.lower(),
                "key_id": w.key_id.hex(),
                "vkey": w.vkey,
            }
        )
    else:
        click.echo(w.vkey)


@witness.command("vkey")
@click.argument("key")
@json_option
@pass_ctx
def witness_vkey(ctx: Context, key: str, as_json: bool) -> None:
    """Print the vkey of witness key KEY: `<name>+<key id>+<base64(type ‖ public key)>`, type
    0x04 for Ed25519, 0x06 for ML-DSA-44."""
    _echo_key(key, witness_key(ctx.keyring, check_key_name(key)), as_json)


@witness.command("cosign")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--key", required=True, help="The witness key that cosigns (govledger witness new).")
@log_option
@state_option
@click.option("--note", is_flag=True, help="Print the checkpoint with the cosignature appended.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE.")
@json_option
@pass_ctx
def witness_cosign(
    ctx: Context,
    file: str,
    key: str,
    log_vkeys: tuple[str, ...],
    state_dir: str | None,
    note: bool,
    output: str | None,
    as_json: bool,
) -> None:
    """Check a log's checkpoint and cosign it; print the cosignature line.

    FILE is what `govledger prove --consistency LAST` prints (a C2SP tlog-witness
    add-checkpoint body: old size, consistency proof, new checkpoint), or a bare checkpoint
    while this witness has cosigned nothing of that log. The witness checks, in order: the
    checkpoint's origin is a --log, whose key signed it (else exit 1); the old size is that of
    the last checkpoint it cosigned of that log (exit 2 otherwise: ask for a proof from that
    one, kept in --state); the proof shows the new tree extends that one (exit 1: the log
    forked or rewrote history). Only then does it cosign, with this machine's time and the
    key's type (Ed25519 or ML-DSA-44, as `witness new --type` made it), and keep the new
    checkpoint as the last cosigned.

    Append the printed line to the checkpoint (`>> cp.txt`), or print the cosigned
    checkpoint with --note.
    """
    logs = followed_logs(log_vkeys)
    private_key, identity = witness_signer(ctx, key)
    state = witness_state(key, state_dir)
    cosigned = witness_checkpoint(
        read_bytes(file, "checkpoint"),
        state=state,
        logs=logs,
        name=identity.name,
        private_key=private_key,
        clock=now,
    )
    cp = cosigned.checkpoint
    write_output(
        cosigned.note if note else cosigned.line,
        output,
        as_json,
        origin=cp.origin,
        size=cp.size,
        root=cp.root.hex(),
        old_size=cosigned.old_size,
        witness=identity.name,
        key_id=identity.key_id.hex(),
        timestamp=cosigned.timestamp,
        line=cosigned.line,
        kept=str(state.path(cp.origin)),
    )


@witness.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--vkey", required=True, help="The log's C2SP verifier key (govledger keys vkey NAME)."
)
@add_witness_options
@json_option
def witness_verify(
    file: str, vkey: str, witness_vkeys: tuple[str, ...], quorum: int | None, as_json: bool
) -> None:
    """Verify a checkpoint and its witness cosignatures offline: no database needed.

    Checks the checkpoint's signature against VKEY, then that at least --quorum (default:
    all) of the --witness witnesses cosigned it, and that no cosignature by one of them fails.
    Exit 1 when anything fails, naming the witnesses missing or whose cosignature failed.
    """
    from ledger.tlog.cosignatures import verify_cosignatures

    try:
        log = parse_vkey(vkey)
    except CheckpointError as e:
        raise InputError(f"--vkey: {e.message}") from e
    witnesses, want = witness_policy(witness_vkeys, quorum)
    if not witnesses:
        raise InputError("missing --witness: the witnesses whose cosignatures to check")
    data = read_bytes(file, "checkpoint")
    cp = verify_checkpoint(data, log)
    report = verify_cosignatures(data, witnesses, quorum=want, now=now())
    if as_json:
        echo_json(
            {
                "ok": True,
                "origin": cp.origin,
                "size": cp.size,
                "root": cp.root.hex(),
                **cosignature_fields(report),
            }
        )
        return
    click.echo(f"ok: {cp.origin} at size {cp.size}, root {cp.root.hex()}")
    click.echo(cosignature_summary(report))


witness.add_command(witness_serve)
witness.add_command(witness_request)

COMMANDS = [witness]
