"""Copy a log between stores (SQLite, PostgreSQL), verified, resuming where the destination stops.

SPEC §5 ``copy``. (1) The source is verified as ``verify`` does (framing, hashes, chain,
signatures, key authorization, its stored Merkle tree): a source with a problem is not copied
(exit 1). (2) The destination must be a prefix of the source: its events are compared with the
source's, and the first seq that differs is named (exit 1). (3) The rest is copied as it is
(same seq, id, ts, hash, sig) in chunks, each its own transaction, each row checked to extend
the destination's head (``chaining.append_signed``); an interrupted copy resumes at the
destination's head. (4) Both stores then give the same Merkle root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ledger.errors import ChainError
from ledger.verify.verifier import verify_ledger

CHUNK = 1000
"""Events per transaction of the destination."""


@dataclass(frozen=True)
class Copied:
    already: int
    """Events the destination held before (a prefix of the source)."""
    copied: int
    size: int
    root: bytes


def verified_size(src: Any) -> int:
    """(1) Verify the source (``ChainError`` naming its first problem); its size."""
    report = verify_ledger(src)
    if not report.ok:
        raise ChainError(f"{src.path}: the source does not verify: {report.problems[0]}")
    return report.head_seq or 0


def copy_log(
    src: Any, dst: Any, *, size: int, progress: Callable[[int], None] | None = None
) -> Copied:
    """Copy the first ``size`` events of ``src`` (verified by ``verified_size``) into ``dst``
    (both open stores); see the module docstring."""
    # (2)
    have, _ = dst.head()
    if have > size:
        raise ChainError(
            f"{dst.path}: holds {have} events, the source {size}: seq {size + 1} is not in the "
            "source, so the destination is not a prefix of it"
        )
    theirs = dst.iter_rows(to_seq=have)
    for ours in src.iter_rows(to_seq=have):
        other = next(theirs, None)
        if other is None or tuple(other) != tuple(ours):
            seq = ours[0] if other is None else min(ours[0], other[0])
            raise ChainError(
                f"seq {seq}: {dst.path} differs from {src.path}: the destination is not a "
                "prefix of the source"
            )
    # (3)
    rows = src.iter_rows(from_seq=have + 1, to_seq=size)
    for chunk in _chunks(rows):
        with dst.write():
            dst.append_signed(chunk)
        if progress is not None:
            progress(len(chunk))
    # (4)
    root = src.root_at(size)
    if dst.root_at(size) != root:
        raise ChainError(f"{dst.path}: the Merkle root at size {size} differs from the source's")
    return Copied(have, size - have, size, root)


def _chunks(rows: Iterator[Any]) -> Iterator[list[Any]]:
    while chunk := list(islice(rows, CHUNK)):
        yield chunk
