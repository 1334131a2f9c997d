"""Checkpoints, inclusion proofs and consistency requests for a stored ledger (SPEC §4).

The ledger signs C2SP checkpoints with a governor key (the note's key name is the log's
origin) and keeps them in the ``checkpoints`` side table; they are not events. An inclusion
proof is a C2SP tlog-proof whose ``extra`` line carries the event's canonical body C, so it
verifies offline with nothing but the proof and the vkey (``verify_event_proof``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.crypto.keyfiles import Signer
from ledger.crypto.signing import b64decode_canonical, event_hash
from ledger.errors import CheckpointError, InputError, ProofError
from ledger.event.canonical import loads
from ledger.event.envelope import format_ts
from ledger.store.sqlite import Ledger
from ledger.tlog.consistency import governor_verifiers
from ledger.tlog.notes import (
    Checkpoint,
    format_tlog_proof,
    format_witness_request,
    open_note,
    parse_checkpoint,
    sign_checkpoint,
    verify_tlog_proof,
)
from ledger.verify.chain import body_bytes


def sign_current_checkpoint(ledger: Ledger, signer: Signer) -> str:
    """Sign a checkpoint of the log as it is now, store it, and return the note."""
    ledger.require_governor(signer, "checkpoints")
    size = ledger.size
    root = ledger.root_at(size)
    note = sign_checkpoint(
        origin=ledger.origin, size=size, root=root, private_key=signer.private_key
    )
    ledger.save_checkpoint(size, signer.name, root.hex(), note, format_ts(datetime.now(UTC)))
    return note


def latest_checkpoint(ledger: Ledger, min_size: int) -> str | None:
    """The newest stored checkpoint of size at least ``min_size`` (None when none)."""
    row = ledger.conn.execute(
        "SELECT note FROM checkpoints WHERE size >= ? ORDER BY size DESC LIMIT 1", (min_size,)
    ).fetchone()
    return None if row is None else str(row[0])


def open_ledger_checkpoint(ledger: Ledger, note: str) -> Checkpoint:
    """Verify ``note`` against this ledger's governor keys and its origin."""
    governors = [
        b64decode_canonical(k["public_key"]) for k in ledger.keys() if k["role"] == "governor"
    ]
    return parse_checkpoint(open_note(note, governor_verifiers(ledger.origin, governors)))


def event_body(ledger: Ledger, seq: int) -> bytes:
    e = ledger.conn.execute(
        "SELECT seq, id, ts, type, agent, run, actor, payload, prev, key FROM events WHERE seq = ?",
        (seq,),
    ).fetchone()
    if e is None:
        raise InputError(f"seq {seq} is not in the log (size {ledger.size})")
    return body_bytes(
        seq=e[0],
        id=e[1],
        ts=e[2],
        type=e[3],
        agent=e[4],
        run=e[5],
        actor=e[6],
        payload=e[7],
        prev=e[8],
        key=e[9],
    )


def prove_inclusion(
    ledger: Ledger,
    seq: int,
    *,
    root_signer: Signer | None = None,
    fresh_signer: Signer | None = None,
) -> str:
    """A tlog-proof of event ``seq``: embeds the latest stored checkpoint covering it.

    With ``fresh_signer``, a new checkpoint at the current size is signed with it; when no
    stored checkpoint covers ``seq``, one is signed with ``root_signer``.
    """
    body = event_body(ledger, seq)
    note: str | None
    if fresh_signer is not None:
        note = sign_current_checkpoint(ledger, fresh_signer)
    else:
        note = latest_checkpoint(ledger, seq)
        if note is None:
            if root_signer is None:
                raise InputError(f"no stored checkpoint covers seq {seq}; sign one with --signer")
            note = sign_current_checkpoint(ledger, root_signer)
    cp = open_ledger_checkpoint(ledger, note)
    proof = ledger.inclusion_proof(seq - 1, cp.size)
    return format_tlog_proof(index=seq - 1, proof=proof, checkpoint_note=note, extra=body)


def witness_request(ledger: Ledger, old_note: str, *, signer: Signer) -> str:
    """The C2SP tlog-witness add-checkpoint body from an old checkpoint to a fresh one."""
    try:
        old = open_ledger_checkpoint(ledger, old_note)
    except CheckpointError as e:
        raise CheckpointError(f"old checkpoint: {e.message}") from e
    size = ledger.size
    if old.size > size:
        raise CheckpointError(f"old checkpoint has size {old.size}, the log only {size}: truncated")
    if old.size and ledger.root_at(old.size) != old.root:
        raise CheckpointError(
            f"old checkpoint root differs from this log's root at size {old.size}"
        )
    note = sign_current_checkpoint(ledger, signer)
    proof = ledger.consistency_proof(old.size, size) if 0 < old.size < size else []
    return format_witness_request(old_size=old.size, proof=proof, checkpoint_note=note)


@dataclass(frozen=True)
class ProvenEvent:
    """An event proven to be in a log: its envelope body, hash and the checkpoint."""

    body: dict[str, Any]
    hash: str
    checkpoint: Checkpoint


def verify_event_proof(text: str | bytes, *, vkey: str) -> ProvenEvent:
    """Verify a govledger tlog-proof offline: signature, inclusion, and that ``extra`` is the
    canonical body of the event at that index (its ``seq`` is index + 1)."""
    verified = verify_tlog_proof(text, verifier=vkey)
    try:
        body = loads(verified.extra, "tlog-proof extra")
    except InputError as e:
        raise ProofError(f"tlog-proof extra: not a govledger event body ({e.message})") from e
    if not isinstance(body, dict) or body.get("seq") != verified.index + 1:
        raise ProofError(
            f"tlog-proof: extra is not the event at index {verified.index} "
            f"(seq {body.get('seq') if isinstance(body, dict) else '?'})"
        )
    from ledger.event.canonical import canonical

    if canonical(body) != verified.extra:
        raise ProofError("tlog-proof extra: event body is not in canonical form")
    return ProvenEvent(
        body=body, hash=event_hash(verified.extra).hex(), checkpoint=verified.checkpoint
    )
