"""C2SP signed notes, checkpoints, tlog-proofs and tlog-witness requests with Ed25519 (SPEC §4).

Follows c2sp.org/signed-note@v1, tlog-checkpoint@v1, tlog-proof@v1 and the add-checkpoint body
of tlog-witness. Parsing is strict (one encoding per value: canonical base64, decimals without
leading zeros), so a changed byte is rejected as malformed or fails a signature or Merkle check.
Failures raise ``CheckpointError`` (format, signature) or ``ProofError`` (Merkle proof).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import CheckpointError, NoteSignatureError, ProofError
from ledger.tlog import merkle

SIG_PREFIX = "\u2014 "  # em dash, space
ED25519 = 0x01  # signed-note signature type
COSIGNATURE_V1 = 0x04  # signed-note signature type of tlog-cosignature's Ed25519 cosignatures
COSIGNATURE_MLDSA44 = 0x06  # signed-note signature type of tlog-cosignature's ML-DSA-44 ones
SIGNATURE_TYPES = {
    ED25519: "Ed25519",
    COSIGNATURE_V1: "Ed25519 cosignature/v1",
    COSIGNATURE_MLDSA44: "ML-DSA-44 cosignature",
}
KEY_SIZES = {ED25519: 32, COSIGNATURE_V1: 32, COSIGNATURE_MLDSA44: 1312}
"""Public key bytes of each signature type's vkey."""
KEY_ALGORITHMS = {ED25519: "Ed25519", COSIGNATURE_V1: "Ed25519", COSIGNATURE_MLDSA44: "ML-DSA-44"}
MAX_SIGNATURES = 100  # signed-note: verifiers MUST accept at least 16
MAX_PROOF_LINES = 63
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"

_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile("0|[1-9][0-9]{0,19}")
_HEX_KEY_ID = re.compile("[0-9a-f]{8}")


def _short(s: str) -> str:
    return repr(s if len(s) <= 40 else s[:40] + "...")


def _text(data: str | bytes, where: str) -> str:
    """Valid UTF-8 without ASCII control characters other than newline (signed-note)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckpointError(f"{where}: not valid UTF-8 at byte {e.start}") from e
    try:
        data.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CheckpointError(f"{where}: lone surrogate at offset {e.start}") from e
    if m := _CONTROL.search(data):
        raise CheckpointError(f"{where}: control character U+{ord(m[0]):04X} at offset {m.start()}")
    return data


def _b64(s: str, where: str, size: int | None = None) -> bytes:
    """Decode standard base64, accepting only the canonical encoding (and ``size`` bytes)."""
    try:
        data = base64.b64decode(s, validate=True)
    except ValueError as e:
        raise CheckpointError(f"{where}: {_short(s)} is not base64") from e
    if base64.b64encode(data).decode() != s:
        raise CheckpointError(f"{where}: {_short(s)} is not canonical base64")
    if size is not None and len(data) != size:
        raise CheckpointError(f"{where}: {len(data)} bytes, want {size}")
    return data


def _decimal(s: str, where: str) -> int:
    if not _DECIMAL.fullmatch(s) or int(s) >= 2**64:
        raise CheckpointError(f"{where}: {_short(s)} is not a decimal without leading zeros")
    return int(s)


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


def bad_key_name_char(name: str) -> int | None:
    """The offset of the first character a signed-note key name may not hold, or None.

    Key names hold no Unicode space and no '+'; a note holds no control character and only
    valid UTF-8 (so no lone surrogate).
    """
    for i, c in enumerate(name):
        if c.isspace() or c == "+" or c < " " or "\ud800" <= c <= "\udfff":
            return i
    return None


def _check_name(name: str, where: str) -> None:
    if not name:
        raise CheckpointError(f"{where}: key name is empty")
    if bad_key_name_char(name) is not None:
        raise CheckpointError(f"{where}: key name {_short(name)} contains a space, '+' or control")


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier key: name, 4-byte key id, raw 32-byte public key."""

    name: str
    key_id: bytes
    public_key: bytes


def compute_key_id(*, name: str, public_key: bytes, signature_type: int = ED25519) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || signature type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key).digest()[:4]


def format_vkey(*, name: str, public_key: bytes, signature_type: int = ED25519) -> str:
    """``<name>+<hex key id>+<base64(signature type || public key)>``."""
    _check_name(name, "vkey")
    want = KEY_SIZES[signature_type]
    if len(public_key) != want:
        raise CheckpointError(
            f"vkey {name}: {KEY_ALGORITHMS[signature_type]} public key is {len(public_key)} "
            f"bytes, want {want}"
        )
    key_id = compute_key_id(name=name, public_key=public_key, signature_type=signature_type)
    return f"{name}+{key_id.hex()}+{_b64e(bytes([signature_type]) + public_key)}"


def decode_vkey(vkey: str, *, signature_type: int = ED25519) -> tuple[str, bytes, bytes]:
    """``(name, key id, public key)`` of a vkey of ``signature_type`` (strict, see
    ``decode_typed_vkey``)."""
    name, key_id, _, public_key = decode_typed_vkey(vkey, signature_types=(signature_type,))
    return name, key_id, public_key


def decode_typed_vkey(
    vkey: str, *, signature_types: Sequence[int]
) -> tuple[str, bytes, int, bytes]:
    """``(name, key id, signature type, public key)`` of a vkey of one of ``signature_types``.

    Strict: a name that is not a key name, a key id that is not 8 lowercase hex digits or not
    the key's, non-canonical base64, another signature type or key size are refused.
    """
    parts = vkey.split("+", 2)  # base64 may hold '+'
    if len(parts) != 3:
        raise CheckpointError(
            f"vkey {_short(vkey)}: want <name>+<key id>+<key>, found {len(parts)} part(s)"
        )
    name, hex_id, b64_key = parts
    _check_name(name, "vkey")
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise CheckpointError(f"vkey {name}: key id {_short(hex_id)} is not 8 lowercase hex digits")
    key = _b64(b64_key, f"vkey {name}: key")
    if not key or key[0] not in signature_types:
        found = SIGNATURE_TYPES.get(key[0]) if key else None
        want = " or ".join(f"{t:02x} ({SIGNATURE_TYPES[t]})" for t in signature_types)
        raise CheckpointError(
            f"vkey {name}: signature type is {key[:1].hex()}"
            + (f" ({found})" if found else "")
            + f", want {want}"
        )
    signature_type = key[0]
    if len(key) - 1 != KEY_SIZES[signature_type]:
        raise CheckpointError(
            f"vkey {name}: {KEY_ALGORITHMS[signature_type]} key is {len(key) - 1} bytes, "
            f"want {KEY_SIZES[signature_type]}"
        )
    computed = compute_key_id(name=name, public_key=key[1:], signature_type=signature_type)
    if computed.hex() != hex_id:
        raise CheckpointError(f"vkey {name}: key id is {hex_id}, the key's id is {computed.hex()}")
    return name, computed, signature_type, key[1:]


def parse_vkey(vkey: str) -> Verifier:
    """Parse a note verifier key (Ed25519, type 0x01); the key id must be the key's."""
    name, key_id, public_key = decode_vkey(vkey)
    return Verifier(name=name, key_id=key_id, public_key=public_key)


# --- signed notes ---------------------------------------------------------------------------


def sign_note(*, text: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note: ``text``, a blank line, and ``— <name> base64(key id || signature)``."""
    text = _text(text, "note text")
    if not text.endswith("\n"):
        raise CheckpointError("note text: does not end with a newline")
    _check_name(name, "note signer")
    public_key = private_key.public_key().public_bytes_raw()
    sig = compute_key_id(name=name, public_key=public_key) + private_key.sign(text.encode())
    return f"{text}\n" + format_signature_line(name, sig)


def format_signature_line(name: str, signature: bytes) -> str:
    """``— <name> base64(signature)`` and a newline: one signature line of a note."""
    return f"{SIG_PREFIX}{name} {_b64e(signature)}\n"


def split_note(note: str | bytes, where: str = "note") -> tuple[str, list[tuple[str, bytes]]]:
    """Split a note into its text and (key name, key id || signature) pairs, checking syntax
    only: no signature is verified."""
    note = _text(note, where)
    if not note.endswith("\n"):
        raise CheckpointError(f"{where}: does not end with a newline")
    split = note.rfind("\n\n")  # signed-note: the text ends at the last blank line
    if split < 0:
        raise CheckpointError(f"{where}: no blank line before the signatures")
    text, lines = note[: split + 1], note[split + 2 : -1].split("\n")
    if lines == [""]:
        raise CheckpointError(f"{where}: no signature lines after the blank line")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"{where}: {len(lines)} signatures, at most {MAX_SIGNATURES}")
    sigs = []
    for i, line in enumerate(lines, start=1):
        at = f"{where} signature {i}"
        name, space, b64 = line.removeprefix(SIG_PREFIX).partition(" ")
        if not line.startswith(SIG_PREFIX) or not space:
            raise CheckpointError(f"{at}: {_short(line)} is not '— <key name> <signature>'")
        _check_name(name, at)
        sig = _b64(b64, at)
        if len(sig) < 5:
            raise CheckpointError(f"{at}: {len(sig)} bytes, want a 4-byte key id and a signature")
        sigs.append((name, sig))
    return text, sigs


def open_note(note: str | bytes, verifiers: Sequence[Verifier]) -> str:
    """Return the text of ``note`` once a known key's signature on it verifies.

    signed-note: signatures by unknown keys (name and key id not both matching a verifier) are
    ignored; a known key's signature that fails rejects the note; at least one must verify.
    A malformed note raises ``CheckpointError``; a well-formed one that fails these
    ``NoteSignatureError``.
    """
    text, sigs = split_note(note, "note")
    verified = 0
    for i, (name, sig) in enumerate(sigs, start=1):
        for v in verifiers:
            if v.name == name and v.key_id == sig[:4]:
                try:
                    Ed25519PublicKey.from_public_bytes(v.public_key).verify(sig[4:], text.encode())
                except (InvalidSignature, ValueError) as e:
                    raise NoteSignatureError(
                        f"note signature {i}: signature by {name}+{v.key_id.hex()} does not verify"
                    ) from e
                verified += 1
    if not verified:
        found = ", ".join(f"{n}+{s[:4].hex()}" for n, s in sigs)
        known = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in verifiers) or "none"
        raise NoteSignatureError(
            f"note: no signature by a known key (found {found}; known {known})"
        )
    return text


# --- checkpoints ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A parsed tlog-checkpoint; ``text`` is the note text (body) it was parsed from."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    text: str


def parse_checkpoint(text: str, *, check_empty_root: bool = True) -> Checkpoint:
    """Parse a checkpoint body: origin, tree size, base64 root hash, extension lines.

    ``check_empty_root=False`` lets a size-0 checkpoint hold any root: a witness refuses that
    one only after the log's signature and the old size (tlog-witness: 422, not 400).
    """
    text = _text(text, "checkpoint")
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint: does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint: {len(lines)} line(s), want origin, size and root hash")
    if not lines[0]:
        raise CheckpointError("checkpoint line 1: origin is empty")
    size = _decimal(lines[1], "checkpoint line 2: tree size")
    root = _b64(lines[2], "checkpoint line 3: root hash", merkle.HASH_SIZE)
    if check_empty_root and size == 0 and root != merkle.EMPTY_ROOT:
        raise CheckpointError("checkpoint line 3: tree size 0 needs the empty tree's root hash")
    for i, line in enumerate(lines[3:], start=4):
        if not line:
            raise CheckpointError(f"checkpoint line {i}: extension line is empty")
    return Checkpoint(lines[0], size, root, tuple(lines[3:]), text)


def format_checkpoint_body(
    *, origin: str, size: int, root: bytes, extensions: Sequence[str] = ()
) -> str:
    """``<origin>\\n<size>\\n<base64 root>\\n`` plus extension lines, checked by parsing back."""
    if any("\n" in line for line in [origin, *extensions]):
        raise CheckpointError("checkpoint: origin or an extension line holds a newline")
    body = "".join(f"{line}\n" for line in [origin, str(size), _b64e(root), *extensions])
    parse_checkpoint(body)
    return body


def sign_checkpoint(
    *,
    origin: str,
    size: int,
    root: bytes,
    private_key: Ed25519PrivateKey,
    extensions: Sequence[str] = (),
) -> str:
    """A checkpoint signed note; the key name is the origin (SPEC §4)."""
    body = format_checkpoint_body(origin=origin, size=size, root=root, extensions=extensions)
    return sign_note(text=body, name=origin, private_key=private_key)


def verify_checkpoint(note: str | bytes, verifier: Verifier | str) -> Checkpoint:
    """Verify a checkpoint note signed by ``verifier`` (a ``Verifier`` or vkey string)."""
    v = parse_vkey(verifier) if isinstance(verifier, str) else verifier
    # (1) the signature, before the text is trusted; (2) the body; (3) its origin is the key's.
    cp = parse_checkpoint(open_note(note, [v]))
    if cp.origin != v.name:
        raise CheckpointError(f"checkpoint: origin {_short(cp.origin)} is not the key {v.name}")
    return cp


def parse_unverified_checkpoint(
    note: str | bytes, where: str = "checkpoint note", *, check_empty_root: bool = True
) -> Checkpoint:
    """Parse a checkpoint note's syntax WITHOUT checking any signature (e.g. to pick keys)."""
    return parse_checkpoint(split_note(note, where)[0], check_empty_root=check_empty_root)


def _hash_lines(lines: Sequence[str], first: int, where: str) -> list[bytes]:
    if len(lines) > MAX_PROOF_LINES:
        raise CheckpointError(f"{where}: {len(lines)} proof lines, at most {MAX_PROOF_LINES}")
    return [
        _b64(line, f"{where} line {i}: proof hash", merkle.HASH_SIZE)
        for i, line in enumerate(lines, first)
    ]


# --- tlog-proof -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TlogProof:
    """A parsed c2sp.org/tlog-proof@v1 (its checkpoint not yet verified)."""

    extra: bytes | None
    index: int
    proof: list[bytes]
    checkpoint_note: str


@dataclass(frozen=True)
class VerifiedProof:
    """A tlog-proof that verified: the entry ``extra`` is at ``index`` under ``checkpoint``."""

    checkpoint: Checkpoint
    index: int
    extra: bytes
    leaf_hash: bytes


def format_tlog_proof(
    *, index: int, proof: Sequence[bytes], checkpoint_note: str, extra: bytes | None = None
) -> str:
    """The tlog-proof text; ``extra`` (govledger: the event's canonical body) is optional."""
    head = [TLOG_PROOF_HEADER]
    if extra is not None:
        head.append(f"extra {_b64e(extra)}")
    head += [f"index {index}", *map(_b64e, proof)]
    text = "\n".join(head) + "\n\n" + checkpoint_note
    parse_tlog_proof(text)
    return text


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Parse a tlog-proof strictly; the checkpoint note is checked for syntax only."""
    text = _text(text, "tlog-proof")
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise CheckpointError("tlog-proof: no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise CheckpointError(f"tlog-proof line 1: {_short(lines[0])} is not {TLOG_PROOF_HEADER}")
    extra = None
    n = 1
    if len(lines) > 1 and lines[1].startswith("extra "):
        extra = _b64(lines[1].removeprefix("extra "), "tlog-proof line 2: extra")
        if not extra:
            raise CheckpointError("tlog-proof line 2: extra is empty (omit the line instead)")
        n = 2
    if len(lines) <= n or not lines[n].startswith("index "):
        raise CheckpointError(f"tlog-proof line {n + 1}: want 'index <N>'")
    index = _decimal(lines[n].removeprefix("index "), f"tlog-proof line {n + 1}: index")
    proof = _hash_lines(lines[n + 1 :], n + 2, "tlog-proof")
    parse_unverified_checkpoint(note, "tlog-proof checkpoint")
    return TlogProof(extra=extra, index=index, proof=proof, checkpoint_note=note)


def verify_tlog_proof(
    text: str | bytes,
    *,
    verifier: Verifier | str,
    leaf_hash_fn: Callable[[bytes], bytes] = merkle.leaf_hash,
) -> VerifiedProof:
    """Verify a tlog-proof offline with the log's vkey (tlog-proof "Verifying a tlog proof").

    govledger's ``extra`` is the event's canonical body C and its leaf hash SHA-256(0x00 || C).
    """
    p = parse_tlog_proof(text)
    # (1) the leaf hash, from extra
    if p.extra is None:
        raise CheckpointError("tlog-proof: no extra line, so no leaf to check")
    leaf_hash = leaf_hash_fn(p.extra)
    # (2) the checkpoint is signed by the log key for its origin
    cp = verify_checkpoint(p.checkpoint_note, verifier)
    # (4) the inclusion proof binds the leaf hash to the checkpoint's root (no witnesses: (3))
    try:
        merkle.verify_inclusion(
            index=p.index, size=cp.size, leaf_hash=leaf_hash, proof=p.proof, root=cp.root
        )
    except ProofError as e:
        raise ProofError(f"tlog-proof: index {p.index} in tree size {cp.size}: {e}") from e
    return VerifiedProof(checkpoint=cp, index=p.index, extra=p.extra, leaf_hash=leaf_hash)


# --- tlog-witness add-checkpoint ------------------------------------------------------------


@dataclass(frozen=True)
class WitnessRequest:
    """A parsed add-checkpoint request body (its checkpoint not yet verified)."""

    old_size: int
    proof: list[bytes]
    checkpoint_note: str


def format_witness_request(*, old_size: int, proof: Sequence[bytes], checkpoint_note: str) -> str:
    """``old <N>``, the consistency proof (one base64 hash per line), a blank line, the note."""
    text = "".join(f"{line}\n" for line in [f"old {old_size}", *map(_b64e, proof)])
    text += "\n" + checkpoint_note
    parse_witness_request(text)
    return text


def parse_witness_request(text: str | bytes) -> WitnessRequest:
    """Parse an add-checkpoint request body strictly; the note is checked for syntax only (a
    size-0 checkpoint's root too is left to the witness's checks)."""
    text = _text(text, "witness request")
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise CheckpointError("witness request: no blank line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise CheckpointError(f"witness request line 1: {_short(lines[0])} is not 'old <N>'")
    old_size = _decimal(lines[0].removeprefix("old "), "witness request line 1: old size")
    proof = _hash_lines(lines[1:], 2, "witness request")
    parse_unverified_checkpoint(note, "witness request checkpoint", check_empty_root=False)
    return WitnessRequest(old_size=old_size, proof=proof, checkpoint_note=note)


def governor_verifiers(origin: str, public_keys: Iterable[bytes]) -> list[Verifier]:
    """C2SP note verifiers (key name = origin) for the given governor public keys."""
    return [
        Verifier(name=origin, key_id=compute_key_id(name=origin, public_key=pub), public_key=pub)
        for pub in public_keys
    ]
