"""Checkpoints, inclusion proofs and consistency requests for a stored ledger (SPEC §4).

The ledger signs C2SP checkpoints with a governor key (the note's key name is the log's
origin) and keeps them in the ``checkpoints`` side table; they are not events. An inclusion
proof is a C2SP tlog-proof whose ``extra`` line carries the event's canonical body C, so it
verifies offline with nothing but the proof and the vkey (``verify_event_proof``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ledger.crypto.keyfiles import Signer
from ledger.crypto.signing import b64decode_canonical, event_hash
from ledger.errors import CheckpointError, InputError, ProofError
from ledger.event.body import body_bytes
from ledger.event.canonical import loads
from ledger.event.envelope import format_ts
from ledger.tlog.cosignatures import (
    CLOCK_SKEW,
    CosignatureReport,
    WitnessKey,
    verify_cosignatures,
)
from ledger.tlog.notes import (
    Checkpoint,
    format_tlog_proof,
    format_witness_request,
    governor_verifiers,
    open_note,
    parse_checkpoint,
    parse_tlog_proof,
    sign_checkpoint,
    verify_checkpoint,
    verify_tlog_proof,
)


class ProvableLog(Protocol):
    """What proofs need of a stored ledger (any ``ledger.store.base.Store`` is one): taken as
    handed over, so this module never imports a store."""

    @property
    def origin(self) -> str: ...

    @property
    def size(self) -> int: ...

    def row_at(self, seq: int) -> Any: ...

    def keys(self) -> list[dict[str, Any]]: ...

    def require_governor(self, signer: Signer, what: str) -> None: ...

    def root_at(self, size: int) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...

    def put_checkpoint(
        self, *, size: int, signer: str, root: str, note: str, created: str
    ) -> None: ...

    def latest_checkpoint(self, min_size: int = 0) -> str | None: ...


def sign_current_checkpoint(ledger: ProvableLog, signer: Signer) -> str:
    """Sign a checkpoint of the log as it is now, store it, and return the note."""
    ledger.require_governor(signer, "checkpoints")
    size = ledger.size
    root = ledger.root_at(size)
    note = sign_checkpoint(
        origin=ledger.origin, size=size, root=root, private_key=signer.private_key
    )
    ledger.put_checkpoint(
        size=size,
        signer=signer.name,
        root=root.hex(),
        note=note,
        created=format_ts(datetime.now(UTC)),
    )
    return note


def latest_checkpoint(ledger: ProvableLog, min_size: int) -> str | None:
    """The newest stored checkpoint of size at least ``min_size`` (None when none)."""
    return ledger.latest_checkpoint(min_size)


def open_ledger_checkpoint(ledger: ProvableLog, note: str) -> Checkpoint:
    """Verify ``note`` against this ledger's governor keys and its origin."""
    governors = [
        b64decode_canonical(k["public_key"]) for k in ledger.keys() if k["role"] == "governor"
    ]
    return parse_checkpoint(open_note(note, governor_verifiers(ledger.origin, governors)))


def event_body(ledger: ProvableLog, seq: int) -> bytes:
    """The canonical body of event ``seq`` as stored (``InputError`` when not in the log)."""
    e = ledger.row_at(seq)
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


def this_logs_checkpoint(ledger: ProvableLog, note: str) -> Checkpoint:
    """Verify that ``note`` is a checkpoint of this log: signed by one of its governor keys for
    its origin, and of the root this log has at that size (``CheckpointError`` otherwise)."""
    cp = open_ledger_checkpoint(ledger, note)
    if cp.size > ledger.size:
        raise CheckpointError(
            f"checkpoint has size {cp.size}, the log only {ledger.size}: truncated"
        )
    if cp.size and ledger.root_at(cp.size) != cp.root:
        raise CheckpointError(f"checkpoint root differs from this log's root at size {cp.size}")
    return cp


def prove_inclusion(
    ledger: ProvableLog,
    seq: int,
    *,
    root_signer: Signer | None = None,
    fresh_signer: Signer | None = None,
    checkpoint_note: str | None = None,
) -> str:
    """A tlog-proof of event ``seq``: embeds the latest stored checkpoint covering it.

    With ``fresh_signer``, a new checkpoint at the current size is signed with it; when no
    stored checkpoint covers ``seq``, one is signed with ``root_signer``. With
    ``checkpoint_note`` (say, one carrying witness cosignatures), that checkpoint is embedded
    as it is, once it is found to be this log's and to cover ``seq``.
    """
    body = event_body(ledger, seq)
    note: str | None
    if checkpoint_note is not None:
        cp = this_logs_checkpoint(ledger, checkpoint_note)
        if cp.size < seq:
            raise InputError(f"the checkpoint (size {cp.size}) does not cover seq {seq}")
        proof = ledger.inclusion_proof(seq - 1, cp.size)
        return format_tlog_proof(
            index=seq - 1, proof=proof, checkpoint_note=checkpoint_note, extra=body
        )
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


def witness_request(ledger: ProvableLog, old_note: str, *, signer: Signer) -> str:
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
    cosignatures: CosignatureReport | None = None
    """The witnesses that cosigned the checkpoint (None: no witnesses were asked for)."""


def verify_event_proof(
    text: str | bytes,
    *,
    vkey: str,
    witnesses: Iterable[WitnessKey | str] = (),
    quorum: int | None = None,
    now: int | None = None,
    skew: int = CLOCK_SKEW,
) -> ProvenEvent:
    """Verify a govledger tlog-proof offline: signature, inclusion, and that ``extra`` is the
    canonical body of the event at that index (its ``seq`` is index + 1).

    With ``witnesses``, the checkpoint must also carry valid cosignatures from at least
    ``quorum`` of them (default: all), timestamps at most ``skew`` seconds after ``now``
    (when given): tlog-proof's step (3), between the log's signature and the inclusion proof.
    """
    keys = list(witnesses)
    report = None
    if keys or quorum is not None:
        note = parse_tlog_proof(text).checkpoint_note
        verify_checkpoint(note, vkey)  # (2) before (3): a cosigned forgery is still a forgery
        report = verify_cosignatures(note, keys, quorum=quorum, now=now, skew=skew)
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
        body=body,
        hash=event_hash(verified.extra).hex(),
        checkpoint=verified.checkpoint,
        cosignatures=report,
    )
