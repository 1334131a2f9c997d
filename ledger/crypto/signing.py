"""Event hashing and Ed25519 signatures over bytes (SPEC §2.1, §2.3).

``hash = SHA-256(0x00 ‖ C)`` (the RFC 9162 leaf hash of the canonical body C) and
``sig = Ed25519(b"govledger/event/v1\\n" ‖ raw hash)``. No pydantic, no SQL: an offline
verifier can reuse this module as it is.

Keys are loaded and stored with ``cryptography``; the per-event hot paths (sign on append,
verify on ``verify``) call libsodium through PyNaCl, which signs and verifies about twice as
fast as OpenSSL through ``cryptography`` here. Ed25519 signatures are deterministic, so both
produce the same bytes; a test pins that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING

import nacl.bindings
import nacl.exceptions

from ledger.errors import DecodeError, SignatureError

if TYPE_CHECKING:
    # ``cryptography`` is imported where keys are read or written, not by the hot paths.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

EVENT_SIGNING_PREFIX = b"govledger/event/v1\n"


def event_hash(canonical_body: bytes) -> bytes:
    """The event hash: SHA-256(0x00 ‖ C), which is also its RFC 9162 leaf hash."""
    return hashlib.sha256(b"\x00" + canonical_body).digest()


def key_id(public_key: bytes) -> str:
    """Key id (SPEC §2.3): the first 16 bytes of SHA-256(raw public key), lowercase hex."""
    return hashlib.sha256(public_key).digest()[:16].hex()


def sodium_secret_key(private_key: Ed25519PrivateKey) -> bytes:
    """The 64-byte libsodium secret key (seed ‖ public key) of ``private_key``."""
    from cryptography.hazmat.primitives import serialization

    seed = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return bytes(nacl.bindings.crypto_sign_seed_keypair(seed)[1])


def sign_event(secret_key: bytes, digest: bytes) -> bytes:
    """Sign the 32-byte event hash under the govledger event domain.

    ``secret_key`` is the libsodium form from ``sodium_secret_key``.
    """
    return bytes(nacl.bindings.crypto_sign(EVENT_SIGNING_PREFIX + digest, secret_key)[:64])


def check_event_signature(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    """True when ``signature`` signs the event hash ``digest``: the verifier's inner loop.

    Callers turn False into a reported problem; use ``verify_event_signature`` elsewhere. A
    key that is not 32 bytes or a signature that is not 64 is False: libsodium reads a fixed
    32 bytes of key, so a short one would be read past its end.
    """
    if len(public_key) != 32 or len(signature) != 64 or len(digest) != 32:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + EVENT_SIGNING_PREFIX + digest, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def verify_event_signature(*, public_key: bytes, signature: bytes, digest: bytes) -> None:
    """Raise ``SignatureError`` unless ``signature`` signs the event hash ``digest``."""
    if not check_event_signature(public_key, signature, digest):
        raise SignatureError("signature does not verify")


def b64encode(data: bytes) -> str:
    """Standard padded base64 (RFC 4648 §4)."""
    return base64.b64encode(data).decode("ascii")


def b64decode_canonical(text: str, what: str = "base64") -> bytes:
    """Decode standard padded base64, refusing any non-canonical form (SPEC §2.1).

    Non-canonical: missing or extra padding, characters outside the alphabet, or non-zero
    padding bits (detected by re-encoding).
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise DecodeError(f"{what}: not valid base64") from e
    if base64.b64encode(data).decode("ascii") != text:
        raise DecodeError(f"{what}: not canonical base64")
    return data
