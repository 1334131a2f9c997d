"""govledger: a signed, hash-chained, append-only audit ledger for AI agents.

Public names, importable from ``ledger``:

- ``Recorder``: the recording API for agent runtimes (docs/api.md: runs, tool calls, usage, the
  pre-tool gate, correction memory) (``ledger.recording``);
- ``Ledger``: a ledger in a SQLite file: ``init``, ``append``, reads (``ledger.store``);
- ``Draft``: an event to append; ``Event``, ``EventView``: a stored event (``ledger.event``);
- ``KeyRing``, ``Signer``: Ed25519 key files and the keys that sign events (``ledger.crypto``);
- ``verify_ledger``, ``verify_export``, ``VerifyReport``: integrity checks of a stored log or of
  an exported file (``ledger.verify``);
- ``sign_current_checkpoint``, ``prove_inclusion``, ``verify_event_proof``,
  ``verify_checkpoint``, ``verify_cosignatures``: C2SP checkpoints, inclusion proofs and a
  quorum of witness cosignatures (``ledger.tlog``);
- ``LedgerError`` and its subclasses: every error a user can meet, each with its exit code
  (``ledger.errors``).

Read models (runs, findings, tiers, corrections) are in the ``projections`` package. Importing
``ledger`` is cheap: each name is loaded when first used (PEP 562), so importing one part (say
``ledger.event.envelope``) does not import the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.crypto.keyfiles import KeyRing, Signer
    from ledger.errors import (
        AlreadyInitialized,
        AuthorizationError,
        ChainError,
        CheckpointError,
        DatabaseLocked,
        DecodeError,
        DuplicateEventId,
        EncodingError,
        EnvironmentProblem,
        EventValidationError,
        InputError,
        KeyFileError,
        LedgerError,
        LedgerMissing,
        NotALedger,
        NoteSignatureError,
        OldSizeMismatch,
        PolicyError,
        ProjectionError,
        ProofError,
        SignatureError,
        StateError,
        StoreError,
        ToolDenied,
        UnauthorizedWrite,
        UnknownEventType,
        UnknownLog,
        VerificationError,
    )
    from ledger.event.drafts import Draft
    from ledger.event.envelope import Event, EventView
    from ledger.recording import Recorder
    from ledger.store.sqlite import Ledger
    from ledger.tlog.cosignatures import verify_cosignatures
    from ledger.tlog.notes import verify_checkpoint
    from ledger.tlog.proofs import (
        prove_inclusion,
        sign_current_checkpoint,
        verify_event_proof,
    )
    from ledger.verify.verifier import VerifyReport, verify_export, verify_ledger

_WHERE = {
    "Recorder": "ledger.recording",
    "Ledger": "ledger.store.sqlite",
    "Draft": "ledger.event.drafts",
    "Event": "ledger.event.envelope",
    "EventView": "ledger.event.envelope",
    "KeyRing": "ledger.crypto.keyfiles",
    "Signer": "ledger.crypto.keyfiles",
    "VerifyReport": "ledger.verify.verifier",
    "verify_ledger": "ledger.verify.verifier",
    "verify_export": "ledger.verify.verifier",
    "prove_inclusion": "ledger.tlog.proofs",
    "verify_event_proof": "ledger.tlog.proofs",
    "sign_current_checkpoint": "ledger.tlog.proofs",
    "verify_checkpoint": "ledger.tlog.notes",
    "verify_cosignatures": "ledger.tlog.cosignatures",
    "LedgerError": "ledger.errors",
    "InputError": "ledger.errors",
    "EncodingError": "ledger.errors",
    "DecodeError": "ledger.errors",
    "EventValidationError": "ledger.errors",
    "UnknownEventType": "ledger.errors",
    "DuplicateEventId": "ledger.errors",
    "UnauthorizedWrite": "ledger.errors",
    "UnknownLog": "ledger.errors",
    "OldSizeMismatch": "ledger.errors",
    "AlreadyInitialized": "ledger.errors",
    "PolicyError": "ledger.errors",
    "EnvironmentProblem": "ledger.errors",
    "StoreError": "ledger.errors",
    "LedgerMissing": "ledger.errors",
    "NotALedger": "ledger.errors",
    "DatabaseLocked": "ledger.errors",
    "StateError": "ledger.errors",
    "ToolDenied": "ledger.errors",
    "KeyFileError": "ledger.errors",
    "VerificationError": "ledger.errors",
    "ChainError": "ledger.errors",
    "SignatureError": "ledger.errors",
    "AuthorizationError": "ledger.errors",
    "ProofError": "ledger.errors",
    "CheckpointError": "ledger.errors",
    "NoteSignatureError": "ledger.errors",
    "ProjectionError": "ledger.errors",
}
"""Public name → the module defining it."""

__all__ = [
    "AlreadyInitialized",
    "AuthorizationError",
    "ChainError",
    "CheckpointError",
    "DatabaseLocked",
    "DecodeError",
    "Draft",
    "DuplicateEventId",
    "EncodingError",
    "EnvironmentProblem",
    "Event",
    "EventValidationError",
    "EventView",
    "InputError",
    "KeyFileError",
    "KeyRing",
    "Ledger",
    "LedgerError",
    "LedgerMissing",
    "NotALedger",
    "NoteSignatureError",
    "OldSizeMismatch",
    "PolicyError",
    "ProjectionError",
    "ProofError",
    "Recorder",
    "SignatureError",
    "Signer",
    "StateError",
    "StoreError",
    "ToolDenied",
    "UnauthorizedWrite",
    "UnknownEventType",
    "UnknownLog",
    "VerificationError",
    "VerifyReport",
    "prove_inclusion",
    "sign_current_checkpoint",
    "verify_checkpoint",
    "verify_cosignatures",
    "verify_event_proof",
    "verify_export",
    "verify_ledger",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
