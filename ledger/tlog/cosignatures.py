"""Witness cosignatures on checkpoints: C2SP tlog-cosignature, Ed25519 ``cosignature/v1``.

A cosignature is one more signed-note signature line on a checkpoint,
``— <witness name> base64(key id || timestamp || signature)``, where

- the key id is SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4];
- the timestamp is a big-endian u64 of POSIX seconds, at most 2^63 − 1;
- the signature is Ed25519 over ``cosignature/v1\\n``, ``time <timestamp>\\n`` and the whole
  checkpoint body (every line up to the blank line, extension lines included).

A witness's verifier key is the vkey ``<name>+<hex key id>+<base64(0x04 || public key)>``.

A verifier holds a set of witness keys and a quorum: at least K of them must have cosigned.
Following signed-note and tlog-proof, lines by unknown keys (name and key id not both a
configured witness's) are ignored, and a line by a configured witness that does not verify
rejects the checkpoint, whatever the count. A witness counts once, however many lines it
signed. Bytes in, bytes out: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.errors import CheckpointError, InputError
from ledger.tlog.notes import (
    COSIGNATURE_V1,
    Checkpoint,
    compute_key_id,
    decode_vkey,
    format_signature_line,
    format_vkey,
    split_note,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1
COSIGNATURE_SIZE = 4 + 8 + 64  # key id, timestamp, Ed25519 signature
CLOCK_SKEW = 600
"""Seconds a cosignature's timestamp may be ahead of the verifier's clock (when it gives one)."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's Ed25519 cosignature key: name, 4-byte key id (type 0x04), public key."""

    name: str
    key_id: bytes
    public_key: bytes

    @property
    def label(self) -> str:
        """``<name>+<hex key id>``: how messages name the witness."""
        return f"{self.name}+{self.key_id.hex()}"

    @property
    def vkey(self) -> str:
        return format_witness_vkey(name=self.name, public_key=self.public_key)


def witness_key_id(*, name: str, public_key: bytes) -> bytes:
    """tlog-cosignature key ID: SHA-256(name || 0x0A || 0x04 || public key)[:4]."""
    return compute_key_id(name=name, public_key=public_key, signature_type=COSIGNATURE_V1)


def format_witness_vkey(*, name: str, public_key: bytes) -> str:
    """``<name>+<hex key id>+<base64(0x04 || public key)>``."""
    return format_vkey(name=name, public_key=public_key, signature_type=COSIGNATURE_V1)


def parse_witness_vkey(vkey: str) -> WitnessKey:
    """Parse a witness vkey strictly (type 0x04, a key id that is the key's)."""
    name, key_id, public_key = decode_vkey(vkey, signature_type=COSIGNATURE_V1)
    return WitnessKey(name=name, key_id=key_id, public_key=public_key)


def witness_set(witnesses: Iterable[WitnessKey | str]) -> tuple[WitnessKey, ...]:
    """The distinct witnesses of ``witnesses`` (keys or vkeys), in order, a repeated one once.

    Refused (``InputError``): one name with two keys, and one key under two names. An Ed25519
    cosignature does not commit to the witness's name, so a line signed for one name could be
    renamed to the other's and count twice.
    """
    out: list[WitnessKey] = []
    for w in witnesses:
        key = parse_witness_vkey(w) if isinstance(w, str) else w
        if key in out:
            continue
        for other in out:
            if other.name == key.name:
                raise InputError(
                    f"witness {key.name} is given with two keys ({other.label}, {key.label})"
                )
            if other.public_key == key.public_key:
                raise InputError(
                    f"witnesses {other.name} and {key.name} have the same public key: a "
                    "cosignature does not commit to its witness's name, so one would count twice"
                )
        out.append(key)
    return tuple(out)


# --- signing ---------------------------------------------------------------------------------


def cosigned_message(*, body: str, timestamp: int) -> bytes:
    """What a ``cosignature/v1`` signs: the header line, ``time <T>`` and the checkpoint body."""
    _check_timestamp(timestamp)
    return f"{HEADER}time {timestamp}\n{body}".encode()


def _check_timestamp(timestamp: int) -> None:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InputError(f"cosignature timestamp {timestamp} is not in 0 .. 2^63 - 1")


def cosign_checkpoint(
    checkpoint: Checkpoint, *, name: str, private_key: Ed25519PrivateKey, timestamp: int
) -> str:
    """The cosignature line of witness ``name`` on ``checkpoint`` at ``timestamp``.

    Only the signing: a witness first checks the checkpoint's signature and its consistency
    with the last checkpoint it cosigned (``ledger.tlog.witness.add_checkpoint``).
    """
    public_key = private_key.public_key().public_bytes_raw()
    witness = parse_witness_vkey(format_witness_vkey(name=name, public_key=public_key))
    message = cosigned_message(body=checkpoint.text, timestamp=timestamp)
    signature = witness.key_id + struct.pack(">Q", timestamp) + private_key.sign(message)
    return format_signature_line(name, signature)


# --- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WitnessResult:
    """What a checkpoint holds from one configured witness."""

    witness: WitnessKey
    timestamp: int | None
    """The newest timestamp among its cosignatures that verified (None: none did)."""
    problem: str | None
    """Why a line by it was refused (None: every line by it verified)."""
    other_key_ids: tuple[bytes, ...] = ()
    """Key ids of lines with its name but another key id (ignored; named when it is missing)."""

    @property
    def cosigned(self) -> bool:
        return self.timestamp is not None and self.problem is None


@dataclass(frozen=True)
class CosignatureReport:
    """The configured witnesses, what each contributed, and the quorum that was required."""

    witnesses: tuple[WitnessResult, ...]
    quorum: int

    @property
    def cosigned(self) -> list[WitnessResult]:
        return [w for w in self.witnesses if w.cosigned]

    @property
    def invalid(self) -> list[WitnessResult]:
        return [w for w in self.witnesses if w.problem is not None]

    @property
    def missing(self) -> list[WitnessResult]:
        return [w for w in self.witnesses if w.timestamp is None and w.problem is None]

    def as_json(self) -> dict[str, object]:
        """``witnesses`` (each: name, key_id, vkey, cosigned, timestamp) and ``quorum``."""
        return {
            "witnesses": [
                {
                    "name": w.witness.name,
                    "key_id": w.witness.key_id.hex(),
                    "vkey": w.witness.vkey,
                    "cosigned": w.cosigned,
                    "timestamp": w.timestamp,
                }
                for w in self.witnesses
            ],
            "quorum": self.quorum,
        }


def _line_problem(
    sig: bytes, text: str, witness: WitnessKey, now: int | None, skew: int
) -> tuple[int | None, str | None]:
    """``(timestamp, None)`` when one cosignature line verifies, else ``(None, why)``."""
    if len(sig) != COSIGNATURE_SIZE:
        return None, (
            f"is {len(sig)} bytes, want {COSIGNATURE_SIZE} "
            "(4-byte key id, 8-byte timestamp, 64-byte Ed25519 signature)"
        )
    (timestamp,) = struct.unpack(">Q", sig[4:12])
    if timestamp > MAX_TIMESTAMP:
        return None, f"has timestamp {timestamp}, beyond 2^63 - 1"
    message = f"{HEADER}time {timestamp}\n{text}".encode()
    try:
        Ed25519PublicKey.from_public_bytes(witness.public_key).verify(sig[12:], message)
    except (InvalidSignature, ValueError):
        return None, "does not verify"
    if now is not None and timestamp > now + skew:
        return None, (
            f"has timestamp {timestamp}, {timestamp - now} s ahead of this clock "
            f"(at most {skew} s allowed)"
        )
    return timestamp, None


def check_cosignatures(
    note: str | bytes,
    witnesses: Sequence[WitnessKey],
    *,
    now: int | None = None,
    skew: int = CLOCK_SKEW,
) -> tuple[WitnessResult, ...]:
    """What ``note`` holds from each of ``witnesses``; reports, never raises for a bad line.

    ``now`` (POSIX seconds): refuse timestamps more than ``skew`` seconds after it. The note's
    syntax is checked (``CheckpointError``); its log signature is not: verify it first.
    """
    text, sigs = split_note(note, "note")
    results = []
    for w in witnesses:
        newest: int | None = None
        problem: str | None = None
        others: list[bytes] = []
        for i, (name, sig) in enumerate(sigs, start=1):
            if name != w.name:
                continue
            if sig[:4] != w.key_id:
                others.append(sig[:4])  # another key of that name: not this witness's line
                continue
            timestamp, why = _line_problem(sig, text, w, now, skew)
            if why is not None:
                problem = problem or f"cosignature by {w.label} (note signature {i}) {why}"
            elif newest is None or (timestamp is not None and timestamp > newest):
                newest = timestamp
        results.append(WitnessResult(w, newest, problem, tuple(dict.fromkeys(others))))
    return tuple(results)


def verify_cosignatures(
    note: str | bytes,
    witnesses: Iterable[WitnessKey | str],
    *,
    quorum: int | None = None,
    now: int | None = None,
    skew: int = CLOCK_SKEW,
) -> CosignatureReport:
    """Raise ``CheckpointError`` unless ``note`` is cosigned by at least ``quorum`` (default:
    all) of ``witnesses``, and no line by one of them fails; return who cosigned.

    (1) the witness set: distinct names and keys (``InputError``), and 1 <= quorum <= its size;
    (2) each configured witness's lines: ignored unless name and key id match, then checked;
    (3) any refused line rejects the note (signed-note: a known key's bad signature rejects it);
    (4) count the witnesses with a verified line against the quorum.
    """
    # (1)
    keys = witness_set(witnesses)
    want = len(keys) if quorum is None else quorum
    if not keys:
        raise InputError("witness quorum: no witness keys given")
    if not 1 <= want <= len(keys):
        raise InputError(f"witness quorum {want}: want 1 to {len(keys)} (the witnesses given)")
    # (2)
    report = CosignatureReport(check_cosignatures(note, keys, now=now, skew=skew), want)
    # (3)
    if report.invalid:
        raise CheckpointError(
            "witness cosignatures: " + "; ".join(str(w.problem) for w in report.invalid)
        )
    # (4)
    if len(report.cosigned) < want:
        missing = ", ".join(_missing(w) for w in report.missing)
        raise CheckpointError(
            f"witness cosignatures: {len(report.cosigned)} of {len(keys)} witnesses cosigned, "
            f"want at least {want}; missing: {missing}"
        )
    return report


def _missing(w: WitnessResult) -> str:
    if not w.other_key_ids:
        return w.witness.label
    ids = ", ".join(k.hex() for k in w.other_key_ids)
    return f"{w.witness.label} (its name signs with key id {ids}: another key?)"
