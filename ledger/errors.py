"""The one error hierarchy of govledger.

Every error a user can meet is a ``LedgerError``; its class decides the exit code
(SPEC §5): 1 integrity failure, 2 usage or input error, 3 environment error. The CLI maps
them in one place and never prints a traceback for them.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every govledger error. Carries the process exit code of its kind."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --- exit 2: usage and input ------------------------------------------------------------


class InputError(LedgerError):
    """Bad input from the user: an invalid event, option or file. Nothing was written."""

    exit_code = 2


class EncodingError(InputError):
    """A value cannot be encoded canonically (float, NaN, huge integer, lone surrogate...)."""


class DecodeError(InputError):
    """Bytes or JSON text that cannot be decoded (truncated JSON, duplicate keys, not UTF-8)."""


class EventValidationError(InputError):
    """An event or payload that does not match its schema in the catalog (SPEC §2.4)."""


class UnknownEventType(EventValidationError):
    """A ``type`` that is neither in the catalog nor of the form ``x.<name>``."""


class DuplicateEventId(InputError):
    """An append whose ``id`` is already in the log (SPEC §2.1)."""


class UnauthorizedWrite(InputError):
    """The signing key's role may not sign this event type (SPEC §2.5), or it is revoked."""


class ToolDenied(InputError):
    """The gate denied a tool call that an adapter could only stop by stopping the run (the
    runtime offered no veto for it); the tool did not run."""


class UnknownLog(InputError):
    """A checkpoint of an origin that is not a log the witness follows (tlog-witness: 404)."""


class OldSizeMismatch(InputError):
    """An add-checkpoint request whose old size is not the size of the last checkpoint the
    witness cosigned of that log (tlog-witness: 409, answering ``size``)."""

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class AlreadyInitialized(InputError):
    """``init`` on a path that already holds a ledger."""


class PolicyError(InputError):
    """A policy document that is not valid."""


# --- exit 3: environment ---------------------------------------------------------------


class EnvironmentProblem(LedgerError):
    """The environment is not usable: missing ledger, locked database, unreadable key."""

    exit_code = 3


class StoreError(EnvironmentProblem):
    """The database cannot be used."""


class LedgerMissing(StoreError):
    """No ledger at the given path."""


class NotALedger(StoreError):
    """The file exists but is not a govledger database (or of an unknown schema version)."""


class DatabaseLocked(StoreError):
    """Another writer held the database lock longer than the busy timeout."""


class StateError(EnvironmentProblem):
    """The remembered state of earlier verifies (``GOVLEDGER_STATE``), or a witness's record of
    the checkpoints it cosigned, cannot be read or written."""


class KeyFileError(EnvironmentProblem):
    """A private key file is missing, unreadable, has loose permissions or a wrong passphrase."""


# --- exit 1: integrity -----------------------------------------------------------------


class VerificationError(LedgerError):
    """Integrity failure: the log, a proof or a read model does not check out."""

    exit_code = 1


class ChainError(VerificationError):
    """Broken hash chain, bad hash, seq gap."""


class SignatureError(VerificationError):
    """A signature that does not verify."""


class AuthorizationError(VerificationError):
    """An event in the log signed by a key whose role does not allow it."""


class ProofError(VerificationError):
    """An inclusion or consistency proof that does not verify."""


class CheckpointError(VerificationError):
    """A checkpoint or signed note that is malformed or does not verify."""


class NoteSignatureError(CheckpointError):
    """A well-formed signed note that no known key signed, or whose signature by a known key
    fails (tlog-witness: 403)."""


class ProjectionError(VerificationError):
    """Read models that differ from the log."""
