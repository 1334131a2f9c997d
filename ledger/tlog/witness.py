"""A witness: cosign a log's checkpoint once it is consistent with the last one cosigned.

Follows the checks of C2SP tlog-witness ``add-checkpoint``. The witness follows some logs (their
note verifier keys, key name = origin) and keeps, per origin, the last checkpoint it cosigned.
A submission is an add-checkpoint body (``old <N>``, consistency proof lines, a blank line, the
new checkpoint note), or a bare checkpoint note, which stands for ``old 0`` (no proof): only
accepted while the witness has cosigned nothing of that log.

``add_checkpoint`` is the decision (bytes in, bytes out), each refusal an error class that
names its tlog-witness HTTP status; ``WitnessState`` keeps what the witness cosigned in a
directory: ``<dir>/<hex SHA-256 of the origin>/checkpoint``, the path a witness serves a log's
latest cosigned checkpoint under, so the directory can be published. The HTTP witness
(``govledger witness serve``) is ``ledger.service.witness_app``; this module speaks no HTTP.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import (
    CheckpointError,
    InputError,
    OldSizeMismatch,
    ProofError,
    StateError,
    UnknownLog,
)
from ledger.tlog import merkle
from ledger.tlog.cosignatures import CosignerKey, cosign_checkpoint
from ledger.tlog.notes import (
    Checkpoint,
    Verifier,
    WitnessRequest,
    format_signature_line,
    open_note,
    parse_checkpoint,
    parse_unverified_checkpoint,
    parse_witness_request,
    split_note,
)


def read_submission(text: str | bytes) -> WitnessRequest:
    """An add-checkpoint body, or a bare checkpoint note read as ``old 0`` with no proof."""
    raw = text.encode() if isinstance(text, str) else text
    if raw.startswith(b"old "):
        return parse_witness_request(raw)
    parse_unverified_checkpoint(raw, "checkpoint note", check_empty_root=False)
    return WitnessRequest(old_size=0, proof=[], checkpoint_note=raw.decode())


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint the witness checked and cosigned."""

    checkpoint: Checkpoint
    old_size: int
    timestamp: int
    line: str
    """The cosignature line: what add-checkpoint answers, to append to the checkpoint."""
    note: str
    """The submitted checkpoint note with the cosignature line appended."""
    kept: str
    """What the witness keeps: the body, the log's signature lines that verified, its line."""


def add_checkpoint(
    request: WitnessRequest,
    *,
    logs: Sequence[Verifier],
    last: str | None,
    name: str,
    private_key: CosignerKey,
    clock: Callable[[], int],
) -> Cosigned:
    """Check ``request`` against the logs followed and the last checkpoint cosigned of its
    origin (``last``, None when none), and cosign its checkpoint as witness ``name``.

    The checks of tlog-witness add-checkpoint, in its order, each refusal with the error whose
    HTTP status the protocol gives it: (1) the origin is a log followed (``UnknownLog``, 404);
    (2) the checkpoint is signed by that log's key (``NoteSignatureError``, 403); (3) old size
    <= new size (``InputError``, 400); (4) old size is the size last cosigned, 0 when none
    (``OldSizeMismatch``, 409); (5) a size-0 checkpoint has the empty tree's root, and the new
    tree extends the old: no proof from 0, equal roots at equal sizes, else the RFC 9162
    consistency proof from the last cosigned root (``ProofError``, 422); (6) cosign,
    timestamped ``clock()`` (POSIX seconds), once every check passed.
    """
    note = request.checkpoint_note
    # (1), (2)
    cp, keys = signed_by_log(note, logs)
    origin = cp.origin
    # (3)
    old = request.old_size
    if old > cp.size:
        raise InputError(f"old size {old} is larger than the checkpoint's size {cp.size}")
    # (4)
    previous = _last(last, origin)
    last_size = 0 if previous is None else previous.size
    if old != last_size:
        raise OldSizeMismatch(
            f"old size {old} does not match: this witness last cosigned {origin} at size "
            f"{last_size}; send a consistency proof from that checkpoint",
            size=last_size,
        )
    # (5)
    if cp.size == 0 and cp.root != merkle.EMPTY_ROOT:
        raise ProofError(
            f"checkpoint of size 0 has root {cp.root.hex()}, not the empty tree's "
            f"{merkle.EMPTY_ROOT.hex()}"
        )
    if previous is None or old == 0:
        if request.proof:
            raise ProofError(f"old size 0 takes no consistency proof, found {len(request.proof)}")
    elif old == cp.size and previous.root != cp.root:
        raise ProofError(
            f"checkpoint of size {cp.size} has root {cp.root.hex()}, the one this witness "
            f"cosigned at that size {previous.root.hex()}: the log forked"
        )
    else:
        try:
            merkle.verify_consistency(
                size1=old, size2=cp.size, proof=request.proof, root1=previous.root, root2=cp.root
            )
        except ProofError as e:
            raise ProofError(
                f"consistency proof from size {old} (last cosigned) to {cp.size}: {e.message}"
            ) from e
    # (6)
    timestamp = clock()
    line = cosign_checkpoint(cp, name=name, private_key=private_key, timestamp=timestamp)
    log_lines = "".join(
        format_signature_line(n, sig)
        for n, sig in split_note(note)[1]
        if any(v.name == n and v.key_id == sig[:4] for v in keys)
    )
    kept = f"{cp.text}\n{log_lines}{line}"
    return Cosigned(cp, old, timestamp, line, note + line, kept)


def signed_by_log(note: str, logs: Sequence[Verifier]) -> tuple[Checkpoint, list[Verifier]]:
    """The checkpoint of ``note`` once a followed log's key for its origin signed it, and
    those keys (``UnknownLog``: not a log followed; ``NoteSignatureError``: not signed)."""
    origin = parse_unverified_checkpoint(note, "checkpoint note", check_empty_root=False).origin
    keys = [v for v in logs if v.name == origin]
    if not keys:
        followed = ", ".join(sorted({v.name for v in logs})) or "none"
        raise UnknownLog(
            f"checkpoint origin {origin!r} is not a log this witness follows "
            f"(it follows: {followed})"
        )
    return parse_checkpoint(open_note(note, keys), check_empty_root=False), keys


def _last(last: str | None, origin: str) -> Checkpoint | None:
    if last is None:
        return None
    cp = parse_unverified_checkpoint(last, "last cosigned checkpoint")
    if cp.origin != origin:
        raise StateError(f"last cosigned checkpoint of {origin!r} is of origin {cp.origin!r}")
    return cp


# --- state -----------------------------------------------------------------------------------

_DIGEST = re.compile("[0-9a-f]{64}")


class WitnessState:
    """Per origin, the last checkpoint a witness cosigned, in files under ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, origin: str) -> Path:
        """``<dir>/<hex SHA-256 of the origin>/checkpoint``."""
        digest = hashlib.sha256(origin.encode("utf-8")).hexdigest()
        return self.directory / digest / "checkpoint"

    @contextlib.contextmanager
    def locked(self, origin: str) -> Iterator[None]:
        """Hold the origin's lock: reading the last checkpoint and keeping the next is one step
        (tlog-witness: two requests checked against one old size must not both be kept)."""
        path = self.path(origin)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise StateError(f"witness state {path.parent}: cannot lock it ({e.strerror})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def last(self, origin: str) -> str | None:
        """The last checkpoint cosigned of ``origin`` (None: none yet)."""
        path = self.path(origin)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise StateError(f"witness state {path}: cannot read it ({e})") from e
        try:
            _last(text, origin)
        except CheckpointError as e:
            raise StateError(f"witness state {path} is not a checkpoint ({e.message})") from e
        return text

    def by_digest(self, digest: str) -> str | None:
        """The last checkpoint cosigned of the origin whose hex SHA-256 is ``digest``, as kept
        (None: none, or ``digest`` is not 64 lowercase hex digits)."""
        if not _DIGEST.fullmatch(digest):
            return None
        path = self.directory / digest / "checkpoint"
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise StateError(f"witness state {path}: cannot read it ({e})") from e

    def keep(self, origin: str, note: str) -> None:
        """Replace the last checkpoint of ``origin`` with ``note``, durably, in one rename.

        The file is synced before the rename, and the directories after it: a witness that
        answered and then lost power must not come back at an older size (tlog-witness: persist
        before responding), or it could cosign a fork from there.
        """
        path = self.path(origin)
        tmp = path.with_name("checkpoint.partial")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                f.write(note)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
            for directory in (path.parent, self.directory):
                fd = os.open(directory, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as e:
            raise StateError(f"witness state {path}: cannot write it ({e.strerror})") from e


def witness_checkpoint(
    submission: str | bytes | WitnessRequest,
    *,
    state: WitnessState,
    logs: Sequence[Verifier],
    name: str,
    private_key: CosignerKey,
    clock: Callable[[], int],
) -> Cosigned:
    """Check and cosign a submission (a parsed request, or the text ``read_submission``
    reads), and keep its checkpoint as the last cosigned, under the origin's lock (taken once
    the log's signature verified): the check of the old size and the keeping of the new
    checkpoint are one step for every process that shares the state directory."""
    request = submission if isinstance(submission, WitnessRequest) else read_submission(submission)
    origin = signed_by_log(request.checkpoint_note, logs)[0].origin
    with state.locked(origin):
        cosigned = add_checkpoint(
            request,
            logs=logs,
            last=state.last(origin),
            name=name,
            private_key=private_key,
            clock=clock,
        )
        state.keep(origin, cosigned.kept)
    return cosigned
