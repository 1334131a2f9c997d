"""Witness cosignatures on checkpoints: C2SP tlog-cosignature, both of its types.

A cosignature is one more signed-note signature line on a checkpoint,
``— <witness name> base64(key id || timestamp || signature)``, where the timestamp is a
big-endian u64 of POSIX seconds, at most 2^63 − 1, and the type is the witness key's:

- Ed25519 ``cosignature/v1`` (signature type 0x04): the key id is SHA-256(name || 0x0A || 0x04
  || 32-byte public key)[:4]; the 64-byte signature is over ``cosignature/v1\\n``,
  ``time <timestamp>\\n`` and the whole checkpoint body (extension lines included).
- ML-DSA-44 (signature type 0x06): the key id is SHA-256(name || 0x0A || 0x06 || 1312-byte
  public key)[:4]; the 2420-byte FIPS 204 signature (empty context) is over the binary
  ``cosigned_message``: ``subtree/v1\\n\\0``, the witness name and the origin each with a
  one-byte length, and u64 timestamp, start (0 for a checkpoint), end (the tree size) and the
  32-byte root hash. It commits to the witness's name; extension lines are not signed.

A witness's verifier key is the vkey ``<name>+<hex key id>+<base64(type || public key)>``.

A verifier holds a set of witness keys and a quorum: at least K of them must have cosigned.
Following signed-note and tlog-proof, lines by unknown keys (name and key id not both a
configured witness's) are ignored, and a line by a configured witness that does not verify
rejects the checkpoint, whatever the count. A witness counts once, however many lines it
signed. Bytes in, bytes out: no I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey, MLDSA44PublicKey

from ledger.errors import CheckpointError, EnvironmentProblem, InputError
from ledger.tlog.notes import (
    COSIGNATURE_MLDSA44,
    COSIGNATURE_V1,
    KEY_ALGORITHMS,
    Checkpoint,
    compute_key_id,
    decode_typed_vkey,
    format_signature_line,
    format_vkey,
    parse_checkpoint,
    split_note,
)

HEADER = "cosignature/v1\n"
SUBTREE_LABEL = b"subtree/v1\n\x00"
"""The 12-byte label that opens an ML-DSA-44 ``cosigned_message``."""
MAX_TIMESTAMP = 2**63 - 1
COSIGNATURE_SIZE = 4 + 8 + 64  # key id, timestamp, Ed25519 signature
MLDSA44_COSIGNATURE_SIZE = 4 + 8 + 2420  # key id, timestamp, ML-DSA-44 signature
WITNESS_TYPES = (COSIGNATURE_V1, COSIGNATURE_MLDSA44)
WITNESS_ALGORITHMS = {"ed25519": COSIGNATURE_V1, "ml-dsa-44": COSIGNATURE_MLDSA44}
"""The witness key types by name (``govledger witness new --type``) and their vkey type."""
CosignerKey = Ed25519PrivateKey | MLDSA44PrivateKey
"""A witness's private key, of either cosignature type."""
T = TypeVar("T")
CLOCK_SKEW = 600
"""Seconds a cosignature's timestamp may be ahead of the verifier's clock (when it gives one)."""


@dataclass(frozen=True)
class WitnessKey:
    """A witness's cosignature key: name, 4-byte key id, public key, and its signature type
    (0x04 Ed25519 ``cosignature/v1``, 0x06 ML-DSA-44)."""

    name: str
    key_id: bytes
    public_key: bytes
    signature_type: int = COSIGNATURE_V1

    @property
    def algorithm(self) -> str:
        """``Ed25519`` or ``ML-DSA-44``."""
        return KEY_ALGORITHMS[self.signature_type]

    @property
    def label(self) -> str:
        """``<name>+<hex key id>``: how messages name the witness."""
        return f"{self.name}+{self.key_id.hex()}"

    @property
    def vkey(self) -> str:
        return format_witness_vkey(
            name=self.name, public_key=self.public_key, signature_type=self.signature_type
        )


def witness_key_id(*, name: str, public_key: bytes, signature_type: int = COSIGNATURE_V1) -> bytes:
    """tlog-cosignature key ID: SHA-256(name || 0x0A || type || public key)[:4], type 0x04
    (Ed25519) or 0x06 (ML-DSA-44)."""
    return compute_key_id(name=name, public_key=public_key, signature_type=signature_type)


def format_witness_vkey(
    *, name: str, public_key: bytes, signature_type: int = COSIGNATURE_V1
) -> str:
    """``<name>+<hex key id>+<base64(type || public key)>``."""
    if signature_type not in WITNESS_TYPES:
        raise InputError(
            f"witness vkey {name}: signature type {signature_type:02x} is not 04 or 06"
        )
    if signature_type == COSIGNATURE_MLDSA44:
        _opaque8(name, "witness name")
    return format_vkey(name=name, public_key=public_key, signature_type=signature_type)


def parse_witness_vkey(vkey: str) -> WitnessKey:
    """Parse a witness vkey strictly (type 0x04 or 0x06, a key id that is the key's; an
    ML-DSA-44 witness's name at most 255 bytes, as its signed message holds it)."""
    name, key_id, signature_type, public_key = decode_typed_vkey(
        vkey, signature_types=WITNESS_TYPES
    )
    if signature_type == COSIGNATURE_MLDSA44 and len(name.encode()) > 255:
        raise CheckpointError(
            f"vkey {name[:40]}...: an ML-DSA-44 witness name is at most 255 bytes, "
            f"found {len(name.encode())}"
        )
    return WitnessKey(name, key_id, public_key, signature_type)


def cosigner_vkey(*, name: str, private_key: CosignerKey) -> WitnessKey:
    """The witness key of ``private_key`` under ``name``."""
    signature_type = (
        COSIGNATURE_MLDSA44 if isinstance(private_key, MLDSA44PrivateKey) else COSIGNATURE_V1
    )
    public_key = private_key.public_key().public_bytes_raw()
    return parse_witness_vkey(
        format_witness_vkey(name=name, public_key=public_key, signature_type=signature_type)
    )


def witness_set(witnesses: Iterable[WitnessKey | str]) -> tuple[WitnessKey, ...]:
    """The distinct witnesses of ``witnesses`` (keys or vkeys), in order, a repeated one once.

    Refused (``InputError``): one name with two keys (of one type or not: a witness counts
    once), and one Ed25519 key under two names: an Ed25519 cosignature does not commit to the
    witness's name, so a line signed for one name could be renamed to the other's and count
    twice. One ML-DSA-44 key under two names is allowed: its signed message holds the name,
    so a line verifies under its own name only.
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
            if other.public_key == key.public_key and key.signature_type == COSIGNATURE_V1:
                raise InputError(
                    f"witnesses {other.name} and {key.name} have the same Ed25519 public key: a "
                    "cosignature/v1 does not commit to its witness's name, so one would count twice"
                )
        out.append(key)
    return tuple(out)


# --- signing ---------------------------------------------------------------------------------


def cosigned_message(*, body: str, timestamp: int) -> bytes:
    """What a ``cosignature/v1`` signs: the header line, ``time <T>`` and the checkpoint body."""
    _check_timestamp(timestamp)
    return f"{HEADER}time {timestamp}\n{body}".encode()


def subtree_message(
    *, name: str, timestamp: int, origin: str, start: int, end: int, root: bytes
) -> bytes:
    """What an ML-DSA-44 cosignature signs, the ``cosigned_message`` (RFC 8446 notation)::

        uint8 label[12] = "subtree/v1\\n\\0";  opaque cosigner_name<1..2^8-1>;
        uint64 timestamp;  opaque log_origin<1..2^8-1>;  uint64 start;  uint64 end;
        uint8 hash[32];

    ``start`` 0 and ``end`` the tree size for a checkpoint; a non-zero ``start`` needs a zero
    ``timestamp``. Integers big-endian; each opaque is a length byte and the UTF-8 bytes.
    """
    _check_timestamp(timestamp)
    if not 0 <= start <= end < 2**64:
        raise InputError(f"subtree [{start}, {end}): want 0 <= start <= end < 2^64")
    if start and timestamp:
        raise InputError(f"subtree from {start}: a subtree not from 0 takes timestamp 0")
    if len(root) != 32:
        raise InputError(f"subtree hash is {len(root)} bytes, want 32")
    return b"".join(
        [
            SUBTREE_LABEL,
            _opaque8(name, "witness name"),
            struct.pack(">Q", timestamp),
            _opaque8(origin, "log origin"),
            struct.pack(">QQ", start, end),
            root,
        ]
    )


def _opaque8(text: str, what: str) -> bytes:
    """``opaque x<1..2^8-1>``: a length byte, then the UTF-8 bytes."""
    data = text.encode()
    if not 1 <= len(data) <= 255:
        raise InputError(
            f"{what} {text[:40]!r}: {len(data)} bytes, an ML-DSA-44 cosignature holds 1 to 255"
        )
    return bytes([len(data)]) + data


def _check_timestamp(timestamp: int) -> None:
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InputError(f"cosignature timestamp {timestamp} is not in 0 .. 2^63 - 1")


def cosign_checkpoint(
    checkpoint: Checkpoint, *, name: str, private_key: CosignerKey, timestamp: int
) -> str:
    """The cosignature line of witness ``name`` on ``checkpoint`` at ``timestamp``, of the
    key's type (Ed25519 ``cosignature/v1`` or ML-DSA-44).

    Only the signing: a witness first checks the checkpoint's signature and its consistency
    with the last checkpoint it cosigned (``ledger.tlog.witness.add_checkpoint``).
    """
    witness = cosigner_vkey(name=name, private_key=private_key)
    if isinstance(private_key, MLDSA44PrivateKey):
        message = subtree_message(
            name=name,
            timestamp=timestamp,
            origin=checkpoint.origin,
            start=0,
            end=checkpoint.size,
            root=checkpoint.root,
        )
        signed = _mldsa(lambda: private_key.sign(message))
    else:
        signed = private_key.sign(cosigned_message(body=checkpoint.text, timestamp=timestamp))
    signature = witness.key_id + struct.pack(">Q", timestamp) + signed
    return format_signature_line(name, signature)


def _mldsa(operation: Callable[[], T]) -> T:
    """Run an ML-DSA-44 operation; a ``cryptography`` without ML-DSA-44 is exit 3, named."""
    try:
        return operation()
    except UnsupportedAlgorithm as e:
        import cryptography

        raise EnvironmentProblem(
            f"ML-DSA-44 cosignatures: this cryptography ({cryptography.__version__}) cannot do "
            "ML-DSA-44; it needs cryptography >= 47 built with OpenSSL 3.5 or later "
            "(pip install -U cryptography)"
        ) from e


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
    mldsa = witness.signature_type == COSIGNATURE_MLDSA44
    want = MLDSA44_COSIGNATURE_SIZE if mldsa else COSIGNATURE_SIZE
    if len(sig) != want:
        return None, (
            f"is {len(sig)} bytes, want {want} "
            f"(4-byte key id, 8-byte timestamp, {want - 12}-byte {witness.algorithm} signature)"
        )
    (timestamp,) = struct.unpack(">Q", sig[4:12])
    if timestamp > MAX_TIMESTAMP:
        return None, f"has timestamp {timestamp}, beyond 2^63 - 1"
    if mldsa:
        cp = parse_checkpoint(text, check_empty_root=False)
        if len(cp.origin.encode()) > 255:
            return None, "cannot be checked: the origin is over 255 bytes"
        message = subtree_message(
            name=witness.name,
            timestamp=timestamp,
            origin=cp.origin,
            start=0,
            end=cp.size,
            root=cp.root,
        )
        verified = _mldsa(lambda: _verify_mldsa44(witness.public_key, sig[12:], message))
    else:
        message = f"{HEADER}time {timestamp}\n{text}".encode()
        verified = _verify_ed25519(witness.public_key, sig[12:], message)
    if not verified:
        return None, "does not verify"
    if now is not None and timestamp > now + skew:
        return None, (
            f"has timestamp {timestamp}, {timestamp - now} s ahead of this clock "
            f"(at most {skew} s allowed)"
        )
    return timestamp, None


def _verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_mldsa44(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        MLDSA44PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


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


def timestamp_text(timestamp: int | None) -> str:
    """A cosignature's time as UTC text (``2026-12-04T21:26:08Z``; ``-`` for none, ``time N``
    for a number no calendar date has)."""
    if timestamp is None:
        return "-"
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"time {timestamp}"
