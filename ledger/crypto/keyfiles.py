"""Private keys on disk: PKCS#8 PEM files in a key directory (SPEC §2.3): Ed25519 keys, and
witnesses' ML-DSA-44 keys (``create_witness_key``; the PKCS#8 seed form, 32 bytes).

Files are ``<dir>/<NAME>.pem``, created 0600 in a 0700 directory; a key file readable by group
or others is refused with the ``chmod`` to run. When ``GOVLEDGER_PASSPHRASE`` is set, new keys are
encrypted with it. Keys are never logged, printed or stored in the ledger; only public keys are.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.crypto.signing import b64encode, key_id, sodium_secret_key
from ledger.errors import InputError, KeyFileError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

# ``cryptography`` is imported by the functions that read or write a key: a command that opens
# a ledger without signing anything (the reading commands) does not load it.

DEFAULT_KEYS_DIR = Path("~/.govledger/keys")
PASSPHRASE_ENV = "GOVLEDGER_PASSPHRASE"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_key_name(name: str) -> str:
    """Key names are file names: letters, digits, ``_ . -``, at most 64 characters."""
    if not NAME_RE.match(name) or name.endswith(".pem"):
        raise InputError(
            f"key name {name!r} is not valid: use letters, digits, '_', '.', '-' "
            "(at most 64 characters, starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class Signer:
    """A loaded private key: what signs events and checkpoints. Never printed."""

    name: str
    private_key: Ed25519PrivateKey
    public_key: bytes
    """The raw 32-byte public key."""

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    @property
    def secret_key(self) -> bytes:
        """The libsodium form of the private key, for the signing hot path."""
        cached: bytes | None = self.__dict__.get("_sodium")
        if cached is None:
            cached = sodium_secret_key(self.private_key)
            object.__setattr__(self, "_sodium", cached)
        return cached

    @property
    def public_key_b64(self) -> str:
        return b64encode(self.public_key)

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id!r})"


def _public_raw(private_key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


class KeyRing:
    """A directory of private key files."""

    def __init__(self, directory: str | Path | None = None) -> None:
        raw = directory or os.environ.get("GOVLEDGER_KEYS") or DEFAULT_KEYS_DIR
        self.directory = Path(raw).expanduser()

    def path(self, name: str) -> Path:
        return self.directory / f"{check_key_name(name)}.pem"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.pem"))

    def create(self, name: str) -> Signer:
        """Generate an Ed25519 key and write it 0600 (refuses to overwrite an existing file)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        private_key = Ed25519PrivateKey.generate()
        self._write(name, private_key)
        return Signer(name=name, private_key=private_key, public_key=_public_raw(private_key))

    def create_witness_key(
        self, name: str, algorithm: str
    ) -> Ed25519PrivateKey | MLDSA44PrivateKey:
        """Generate a witness key, ``ed25519`` or ``ml-dsa-44``, and write it 0600 as
        ``create`` does (an ML-DSA-44 key as its PKCS#8 seed form)."""
        if algorithm == "ed25519":
            return self.create(name).private_key
        if algorithm != "ml-dsa-44":
            raise InputError(f"witness key type {algorithm!r}: want ed25519 or ml-dsa-44")
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

        try:
            private_key = MLDSA44PrivateKey.generate()
        except UnsupportedAlgorithm as e:
            raise KeyFileError(
                f"key {name!r}: this cryptography cannot make ML-DSA-44 keys; it needs "
                "cryptography >= 47 built with OpenSSL 3.5 or later"
            ) from e
        self._write(name, private_key)
        return private_key

    def _write(self, name: str, private_key: PrivateKeyTypes) -> None:
        """Write ``private_key`` to a new 0600 file in the 0700 key directory."""
        path = self.path(name)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise KeyFileError(f"cannot create key directory {self.directory}: {e.strerror}") from e
        mode = stat.S_IMODE(self.directory.stat().st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key directory {self.directory} is accessible by group or others "
                f"(mode {mode:04o}); run: chmod 700 {self.directory}"
            )
        from cryptography.hazmat.primitives import serialization

        passphrase = os.environ.get(PASSPHRASE_ENV)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
            if passphrase
            else serialization.NoEncryption()
        )
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as e:
            raise InputError(f"key {name!r} already exists at {path}") from e
        except OSError as e:
            raise KeyFileError(f"cannot write key file {path}: {e.strerror}") from e
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())

    def load_or_create(self, name: str) -> Signer:
        """The key ``name``, created first when there is no file for it yet."""
        return self.load(name) if self.exists(name) else self.create(name)

    def load(self, name: str) -> Signer:
        """Load an Ed25519 key, refusing files readable by group or others (exit 3)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = self._read(name)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(
                f"key {name!r}: {self.path(name)} is not an Ed25519 key"
                + (
                    " (an ML-DSA-44 witness key signs only cosignatures)"
                    if _is_mldsa44(key)
                    else ""
                )
            )
        return Signer(name=name, private_key=key, public_key=_public_raw(key))

    def load_witness_key(self, name: str) -> Ed25519PrivateKey | MLDSA44PrivateKey:
        """Load a witness's key, Ed25519 or ML-DSA-44, with ``load``'s checks."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

        key = self._read(name)
        if isinstance(key, (Ed25519PrivateKey, MLDSA44PrivateKey)):
            return key
        raise KeyFileError(f"key {name!r}: {self.path(name)} is not an Ed25519 or ML-DSA-44 key")

    def _read(self, name: str) -> PrivateKeyTypes:
        path = self.path(name)
        try:
            st = path.stat()
        except FileNotFoundError as e:
            raise KeyFileError(f"key {name!r} not found: no file {path}") from e
        except OSError as e:
            raise KeyFileError(f"key {name!r}: cannot read {path}: {e.strerror}") from e
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {path} is accessible by group or others (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        try:
            pem = path.read_bytes()
        except OSError as e:
            raise KeyFileError(f"key {name!r}: cannot read {path}: {e.strerror}") from e
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization

        passphrase = os.environ.get(PASSPHRASE_ENV)
        encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
        if encrypted and not passphrase:
            raise KeyFileError(f"key {name!r} is encrypted: set {PASSPHRASE_ENV} to its passphrase")
        try:
            return serialization.load_pem_private_key(
                pem, password=passphrase.encode("utf-8") if encrypted and passphrase else None
            )
        except UnsupportedAlgorithm as e:
            raise KeyFileError(
                f"key {name!r}: {path} is of a type this cryptography cannot load (an ML-DSA-44 "
                "key needs cryptography >= 47 built with OpenSSL 3.5 or later)"
            ) from e
        except (ValueError, TypeError) as e:
            what = "wrong passphrase or damaged file" if encrypted else "not a PKCS#8 PEM key"
            raise KeyFileError(f"key {name!r}: cannot load {path}: {what}") from e


def _is_mldsa44(key: object) -> bool:
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

    return isinstance(key, MLDSA44PrivateKey)
