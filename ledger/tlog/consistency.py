"""Checking a log against an earlier checkpoint or remembered state (SPEC §4, issue 5).

A checkpoint an auditor kept fixes (size N, root R). Against the current log of size S:
S < N is ``truncated`` (reported at seq S + 1); S = N with another root, or S > N with the
first N events no longer hashing to R, is ``checkpoint_mismatch``.

Remembered state: after a successful full verify, the verified size and root are kept per
origin in the user's state directory (``GOVLEDGER_STATE``, default
``$XDG_STATE_HOME/govledger`` or ``~/.local/state/govledger``), outside the database, and later
verifies check consistency with them. It protects against a log cut back or rewritten between
two verifies on this machine; it cannot help on a machine that never verified this log, and it
trusts the state directory itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.errors import CheckpointError, InputError
from ledger.tlog.notes import Verifier as NoteVerifier
from ledger.tlog.notes import (
    compute_key_id,
    open_note,
    parse_checkpoint,
    parse_unverified_checkpoint,
)
from ledger.verify.chain import Problem, short


def _compare(report: Any, *, origin: str, size: int, root: bytes, what: str) -> None:
    if report.origin is not None and origin != report.origin:
        report.add(
            Problem(
                max(report.head_seq, 1),
                "checkpoint_mismatch",
                f"{what} is for origin {origin!r}, this log is {report.origin!r}",
            )
        )
        return
    if report.head_seq < size:
        report.add(
            Problem(
                report.head_seq + 1,
                "truncated",
                f"log has {report.head_seq} events, {what} has {size}",
            )
        )
        return
    actual = report.roots.get(size)
    if actual is None:
        report.add(Problem(size, "checkpoint_mismatch", f"cannot compute the root at size {size}"))
    elif actual != root:
        kind = "same size" if size == report.head_seq else f"first {size} events"
        report.add(
            Problem(
                size,
                "checkpoint_mismatch",
                f"{what} root {short(root.hex())}, the log's root ({kind}) is "
                f"{short(actual.hex())}",
            )
        )


def governor_verifiers(origin: str, public_keys: Iterable[bytes]) -> list[NoteVerifier]:
    """C2SP note verifiers (key name = origin) for the given governor public keys."""
    return [
        NoteVerifier(
            name=origin, key_id=compute_key_id(name=origin, public_key=pub), public_key=pub
        )
        for pub in public_keys
    ]


def checkpoint_roots_wanted(note: str) -> int:
    """The size a checkpoint commits to (parsed without checking the signature)."""
    return parse_unverified_checkpoint(note, "checkpoint").size


def check_checkpoint(report: Any, note: str, governor_keys: Iterable[bytes]) -> None:
    """Add a problem to ``report`` when the log is not consistent with the checkpoint ``note``.

    (1) the note must be signed by a governor key of this log (fails closed), (2) origin,
    (3) size and root against the roots computed while verifying.
    """
    try:
        origin = report.origin or ""
        cp = parse_checkpoint(open_note(note, governor_verifiers(origin, governor_keys)))
    except CheckpointError as e:
        report.add(
            Problem(
                max(report.head_seq, 1),
                "checkpoint_mismatch",
                f"checkpoint does not verify with this log's governor keys: {e.message}",
            )
        )
        return
    report.checkpoint = {"origin": cp.origin, "size": cp.size, "root": cp.root.hex()}
    _compare(report, origin=cp.origin, size=cp.size, root=cp.root, what="checkpoint")


# --- remembered state ----------------------------------------------------------------------


def state_dir() -> Path:
    raw = os.environ.get("GOVLEDGER_STATE")
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(base).expanduser() / "govledger"


def state_path(origin: str) -> Path:
    return state_dir() / f"{hashlib.sha256(origin.encode('utf-8')).hexdigest()[:32]}.json"


def remembered(origin: str) -> dict[str, Any] | None:
    path = state_path(origin)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise InputError(
            f"remembered state {path} is unreadable ({e}); delete it or use --no-state"
        ) from e
    return data if isinstance(data, dict) else None


def remembered_size(origin: str | None) -> int | None:
    if origin is None:
        return None
    state = remembered(origin)
    return int(state["size"]) if state else None


def check_remembered(report: Any) -> None:
    """Compare with the state of the last verify of this origin; remember this one if ok."""
    if report.origin is None:
        return
    state = remembered(report.origin)
    if state is not None and state.get("root_key_id") not in (None, report.root_key_id):
        # Another log under the same origin (a new root key): not this log's history. Pinning
        # the root key (`--trust`) is what catches a log replaced wholesale.
        state = None
        report.state_note = "remembered state was for another root key; replaced"
    if state is not None:
        where = state_path(report.origin)
        _compare(
            report,
            origin=report.origin,
            size=int(state["size"]),
            root=bytes.fromhex(state["root"]),
            what=f"the last verify ({where})",
        )
    if report.ok and (state is None or report.head_seq >= int(state["size"])):
        path = state_path(report.origin)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "origin": report.origin,
                    "size": report.head_seq,
                    "root": report.root.hex(),
                    "root_key_id": report.root_key_id,
                    "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            )
            + "\n",
            encoding="utf-8",
        )
        tmp.replace(path)
