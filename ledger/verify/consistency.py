"""Checking a log against an earlier checkpoint or remembered state (SPEC §4).

A checkpoint an auditor kept fixes (size N, root R). Against the current log of size S:
S < N is ``truncated`` (reported at seq S + 1); S = N with another root, or S > N with the
first N events no longer hashing to R, is ``checkpoint_mismatch``.

Remembered state: after a successful full verify, the verified size and root are kept per
log in the user's state directory (``GOVLEDGER_STATE``, default ``$XDG_STATE_HOME/govledger``
or ``~/.local/state/govledger``), outside the database, and later verifies check consistency
with them. A log is known by its origin and the hash of its seq 1 (its genesis): one file per
origin lists the logs of that origin this machine verified (docs/formats.md). It protects
against a log cut back or rewritten between two verifies on this machine; it cannot help on a
machine that never verified this log, and it trusts the state directory itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.errors import CheckpointError, StateError
from ledger.tlog.cosignatures import (
    CosignatureReport,
    WitnessKey,
    check_cosignatures,
    verify_cosignatures,
)
from ledger.tlog.notes import (
    governor_verifiers,
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


def checkpoint_roots_wanted(note: str) -> int:
    """The size a checkpoint commits to (parsed without checking the signature)."""
    return parse_unverified_checkpoint(note, "checkpoint").size


def check_checkpoint(
    report: Any,
    note: str,
    governor_keys: Iterable[bytes],
    *,
    witnesses: Sequence[WitnessKey] = (),
    quorum: int | None = None,
    now: int | None = None,
) -> None:
    """Add a problem to ``report`` when the log is not consistent with the checkpoint ``note``.

    (1) the note must be signed by a governor key of this log (fails closed); (2) with
    ``witnesses``, it must carry valid cosignatures by at least ``quorum`` (default: all) of
    them, dated at most the allowed skew after ``now`` (``unwitnessed``); (3) origin, (4) size
    and root against the roots computed while verifying.
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
    if witnesses:
        _check_cosignatures(report, note, max(cp.size, 1), witnesses, quorum, now)
    _compare(report, origin=cp.origin, size=cp.size, root=cp.root, what="checkpoint")


def _check_cosignatures(
    report: Any,
    note: str,
    seq: int,
    witnesses: Sequence[WitnessKey],
    quorum: int | None,
    now: int | None,
) -> None:
    """(2) of ``check_checkpoint``: who cosigned goes in ``report.checkpoint``, a quorum not
    met or a bad cosignature in a problem at the checkpoint's last event."""
    want = len(witnesses) if quorum is None else quorum
    cosigned = CosignatureReport(check_cosignatures(note, witnesses, now=now), want)
    report.checkpoint.update(cosigned.as_json())
    try:
        verify_cosignatures(note, witnesses, quorum=want, now=now)
    except CheckpointError as e:
        report.add(Problem(seq, "unwitnessed", e.message))


# --- remembered state ----------------------------------------------------------------------

STATE_FORMAT = 2
"""The state file format written now; a file without ``format`` is the first one (one log,
no genesis), still read."""

_HEX64 = re.compile("[0-9a-f]{64}")
_HEX32 = re.compile("[0-9a-f]{32}")


@dataclass
class KnownLog:
    """One log of an origin, as this machine last verified it."""

    genesis: str | None
    """The hash of its seq 1 (None: read from a first-format file, which did not keep it)."""
    root_key_id: str | None
    size: int
    root: bytes
    verified_at: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "genesis": self.genesis,
            "root_key_id": self.root_key_id,
            "size": self.size,
            "root": self.root.hex(),
            "verified_at": self.verified_at,
        }


def state_dir() -> Path:
    raw = os.environ.get("GOVLEDGER_STATE")
    if raw:
        return Path(raw).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or "~/.local/state"
    return Path(base).expanduser() / "govledger"


def state_path(origin: str) -> Path:
    return state_dir() / f"{hashlib.sha256(origin.encode('utf-8')).hexdigest()[:32]}.json"


def known_logs(origin: str) -> list[KnownLog]:
    """The logs of ``origin`` this machine has verified, oldest entry first.

    A state file that cannot be read, or is not what this module writes, is a
    ``StateError`` (exit 3) naming it: silently forgetting it would drop the protection.
    """
    path = state_path(origin)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StateError(
            f"remembered state {path}: cannot read it ({e.strerror or e}); "
            "fix GOVLEDGER_STATE, or verify with --no-state"
        ) from e
    except UnicodeDecodeError:
        why = "not UTF-8 text"
    else:
        try:
            data = json.loads(text)
        except ValueError:
            why = "not JSON"
        else:
            try:
                return _parse_state(data, origin)
            except _Malformed as e:
                why = str(e)
    raise StateError(
        f"remembered state {path} is malformed ({why}); delete it (this machine then "
        f"forgets the logs of {origin!r} it verified), or verify with --no-state"
    )


class _Malformed(ValueError):
    pass


def _parse_state(data: Any, origin: str) -> list[KnownLog]:
    if not isinstance(data, dict):
        raise _Malformed("not a JSON object")
    if data.get("origin", origin) != origin:
        raise _Malformed(f"it is for origin {data.get('origin')!r}")
    if "format" not in data:
        return [_parse_log({**data, "genesis": None}, "")]  # the first format: one log
    if data["format"] != STATE_FORMAT:
        raise _Malformed(f"format {data['format']!r}, want {STATE_FORMAT}")
    logs = data.get("logs")
    if not isinstance(logs, list):
        raise _Malformed("logs is not a list")
    return [_parse_log(entry, f"logs[{i}].") for i, entry in enumerate(logs)]


def _parse_log(entry: Any, where: str) -> KnownLog:
    if not isinstance(entry, dict):
        raise _Malformed(f"{where.rstrip('.')} is not an object")
    size, root = entry.get("size"), entry.get("root")
    genesis, root_key_id = entry.get("genesis"), entry.get("root_key_id")
    verified_at = entry.get("verified_at")
    if type(size) is not int or size < 0:
        raise _Malformed(f"{where}size is {size!r}, want a whole number")
    if not isinstance(root, str) or not _HEX64.fullmatch(root):
        raise _Malformed(f"{where}root is {root!r}, want 64 lowercase hex")
    if genesis is not None and (not isinstance(genesis, str) or not _HEX64.fullmatch(genesis)):
        raise _Malformed(f"{where}genesis is {genesis!r}, want 64 lowercase hex or null")
    if root_key_id is not None and (
        not isinstance(root_key_id, str) or not _HEX32.fullmatch(root_key_id)
    ):
        raise _Malformed(f"{where}root_key_id is {root_key_id!r}, want 32 lowercase hex or null")
    if verified_at is not None and not isinstance(verified_at, str):
        raise _Malformed(f"{where}verified_at is {verified_at!r}, want text or null")
    return KnownLog(genesis, root_key_id, size, bytes.fromhex(root), verified_at)


def _remember(origin: str, logs: list[KnownLog]) -> None:
    path = state_path(origin)
    data = {"format": STATE_FORMAT, "origin": origin, "logs": [log.as_json() for log in logs]}
    tmp = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise StateError(
            f"remembered state {path}: cannot write it ({e.strerror or e}); "
            "set GOVLEDGER_STATE to a writable directory, or verify with --no-state"
        ) from e


def remembered_sizes(origin: str | None) -> set[int]:
    """The sizes remembered for the logs of ``origin`` (whose roots a verify computes)."""
    return {log.size for log in known_logs(origin)} if origin is not None else set()


def _this_log(logs: list[KnownLog], report: Any) -> KnownLog | None:
    if report.genesis is None:
        # No seq 1 to tell the log by (all its events gone): hold it to the largest log.
        return max(logs, key=lambda log: log.size, default=None)
    for log in logs:
        if log.genesis == report.genesis:
            return log
    for log in logs:
        # A first-format entry did not keep the genesis: it is this log's if the root key is.
        if log.genesis is None and log.root_key_id in (None, report.root_key_id):
            return log
    return None


def _another_log(report: Any, logs: list[KnownLog], path: Path) -> bool:
    """Report a log that is none of the logs of its origin this machine verified.

    It cannot be told from one of them with its first event rewritten, so it fails (exit 1),
    except when its root key is pinned and is none of theirs: the auditor expects a new log.
    Returns whether it is to be remembered alongside them.
    """
    root_key = report.root_key_id
    if report.pinned and root_key is not None and all(log.root_key_id != root_key for log in logs):
        return True
    same_key = [log for log in logs if log.root_key_id == root_key]
    seen = max(same_key or logs, key=lambda log: log.verified_at or "")
    about = (
        f"the log of origin {report.origin!r} this machine verified"
        + (f" at {seen.verified_at}" if seen.verified_at else "")
        + f" ({seen.size} events"
        + (f", root key {seen.root_key_id}" if seen.root_key_id else "")
        + f"; {path})"
    )
    if root_key is not None and seen.root_key_id not in (None, root_key):
        report.add(
            Problem(
                1,
                "untrusted_root",
                f"root key {root_key} is not the root key of {about}: if this log is expected, "
                f"pin its root with --trust {root_key}, or verify with --no-state",
            )
        )
    else:
        theirs = f"{short(seen.genesis)}" if seen.genesis else "another"
        report.add(
            Problem(
                1,
                "checkpoint_mismatch",
                f"this log's seq 1 is {short(report.genesis)}; {about} has {theirs}: another "
                "log under the same origin, or its first event rewritten; give a new log its "
                "own origin, or verify with --no-state",
            )
        )
    return False


def check_remembered(report: Any, *, anchor: int | None = None) -> None:
    """Compare with what this machine remembers of this log; remember this verify if ok.

    (1) find this log among the logs of its origin verified here, by the hash of its seq 1
    (a first-format entry by its root key), (2) none: another log under a known origin is a
    problem unless its new root key is pinned, (3) compare size and root with the last verify,
    (4) remember this log's size and root when everything checked out.

    ``anchor`` is the seq a ``verify --from`` anchors on: its roots are recomputed from there
    on, so a remembered state of a smaller size is not checked, and nothing is remembered (the
    events before the anchor were not read).
    """
    if report.origin is None:
        return
    origin = report.origin
    logs = known_logs(origin)
    path = state_path(origin)
    # (1)
    this = _this_log(logs, report)
    if anchor is not None:
        if this is not None and this.size < anchor:
            report.state_note = (
                f"remembered state of size {this.size} is before the anchor at seq {anchor}: "
                "not checked"
            )
        elif this is not None:
            _compare(
                report,
                origin=origin,
                size=this.size,
                root=this.root,
                what=f"the last verify ({path})",
            )
        return
    new_log = False
    # (2)
    if this is None and logs:
        new_log = _another_log(report, logs, path)
    # (3)
    if this is not None:
        _compare(
            report,
            origin=origin,
            size=this.size,
            root=this.root,
            what=f"the last verify ({path})",
        )
    # (4) A failed verify changes nothing: it fails again next time.
    if not report.ok or report.genesis is None:
        return
    entry = KnownLog(
        genesis=report.genesis,
        root_key_id=report.root_key_id,
        size=report.head_seq,
        root=report.root,
        verified_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    if this is None:
        logs.append(entry)
    else:
        logs[next(i for i, log in enumerate(logs) if log is this)] = entry
    if new_log:
        report.state_note = (
            f"a new log of origin {origin!r} under the pinned root key {report.root_key_id}: "
            f"remembered alongside the {len(logs) - 1} other log(s) of that origin verified here"
        )
    _remember(origin, logs)
