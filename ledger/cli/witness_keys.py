"""What the `govledger witness` commands share: a witness's key and vkey files, the logs it
follows (`--log`), and where it keeps what it cosigned (`--state`)."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.cli.context import Context
from ledger.cli.proofs import read_vkeys
from ledger.crypto.keyfiles import KeyRing, check_key_name
from ledger.errors import CheckpointError, InputError, KeyFileError
from ledger.tlog.cosignatures import CosignerKey, WitnessKey, parse_witness_vkey
from ledger.tlog.notes import Verifier, parse_vkey
from ledger.tlog.witness import WitnessState

log_option = click.option(
    "--log",
    "log_vkeys",
    multiple=True,
    required=True,
    metavar="VKEY",
    help="A log this witness follows: its vkey (govledger keys vkey NAME); repeat it, or "
    "give @FILE: one vkey a line.",
)
state_option = click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False),
    help="Where the witness keeps the last checkpoint it cosigned of each log "
    "[default: $GOVLEDGER_STATE/witness/KEY].",
)


def vkey_path(ring: KeyRing, key: str) -> Path:
    """The witness's public key file beside its private key: ``<keys dir>/<KEY>.vkey``."""
    return ring.path(key).with_suffix(".vkey")


def witness_key(ring: KeyRing, key: str) -> WitnessKey:
    """The vkey of witness key ``key``, read from ``<KEY>.vkey`` (exit 3 when it cannot be)."""
    path = vkey_path(ring, key)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError as e:
        raise KeyFileError(
            f"witness key {key!r}: no {path} (make witness keys with govledger witness new)"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"witness key {key!r}: cannot read {path} ({e})") from e
    try:
        return parse_witness_vkey(text)
    except CheckpointError as e:
        raise KeyFileError(f"witness key {key!r}: {path}: {e.message}") from e


def witness_signer(ctx: Context, key: str) -> tuple[CosignerKey, WitnessKey]:
    """The witness's private key (Ed25519 or ML-DSA-44) and its vkey, which must be of it."""
    identity = witness_key(ctx.keyring, check_key_name(key))
    private_key = ctx.keyring.load_witness_key(key)
    if private_key.public_key().public_bytes_raw() != identity.public_key:
        raise KeyFileError(
            f"witness key {key!r}: {vkey_path(ctx.keyring, key)} is the vkey of another key"
        )
    return private_key, identity


def followed_logs(log_vkeys: tuple[str, ...]) -> list[Verifier]:
    """The logs of ``--log`` (a vkey that is not one is a usage error)."""
    logs = read_vkeys(log_vkeys, "--log", parse_vkey)
    if not logs:
        raise InputError(f"--log {' '.join(log_vkeys)}: no vkey given")
    return logs


def witness_state(key: str, state_dir: str | None) -> WitnessState:
    """``--state DIR``, or ``$GOVLEDGER_STATE/witness/KEY``."""
    if state_dir is not None:
        return WitnessState(state_dir)
    from ledger.verify.consistency import state_dir as default_state

    return WitnessState(default_state() / "witness" / key)
