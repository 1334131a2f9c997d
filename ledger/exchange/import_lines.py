"""Reading ``govledger import`` files: JSON Lines of drafts, all or nothing (SPEC §5).

Every line is parsed and validated before anything is written; every bad line is reported with
its line number, and one bad line means nothing is imported.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from ledger.crypto.keyfiles import Signer
from ledger.errors import EventValidationError, InputError, LedgerError
from ledger.event.canonical import loads, quick_loads
from ledger.event.drafts import TYPED_PAYLOADS, Draft, Prepared, prepare
from ledger.event.framing import ENVELOPE_FIELDS
from ledger.store.base import Store

DRAFT_FIELDS = frozenset({"type", "payload", "agent", "run", "actor", "id"})
LEDGER_FIELDS = tuple(f for f in ENVELOPE_FIELDS if f not in DRAFT_FIELDS)
"""The envelope fields the ledger assigns (v, seq, ts, prev, key, hash, sig)."""
MAX_LINE_BYTES = 1024 * 1024
MAX_REPORTED = 20
CHUNK = 1000
"""Events appended per ``tx.append`` call inside the import's one transaction."""


def parse_line(raw: bytes, n: int) -> Draft:
    """One import line as a validated ``Draft``; errors name ``line n``.

    Read the quick way first (``quick_draft``); a line that way refuses, or whose draft then
    fails validation, is read again the strict way, whose error names the place."""
    where = f"line {n}"
    draft = _quick_line(raw, where)
    if draft is not None:
        try:
            prepare(draft, where)
            return draft
        except (LedgerError, TypeError, ValueError):
            pass  # a value the quick way does not judge (a float, a large integer, …)
    draft = _draft(raw, n)
    prepare(draft, where)
    return draft


def quick_draft(value: object, where: str) -> Draft | None:
    """A value read by ``quick_loads`` as a draft whose type has a fully typed payload
    (``TYPED_PAYLOADS``), not yet validated; ``None`` when it is not one (then read it the
    strict way, which judges free-form values and names any error). Use the draft only once
    ``prepare`` (or the write path's validation) has accepted it."""
    try:
        draft = draft_from_object(value, where)
    except LedgerError:
        return None
    return draft if draft.type in TYPED_PAYLOADS else None


def _quick_line(raw: bytes, where: str) -> Draft | None:
    if len(raw) > MAX_LINE_BYTES:
        return None
    try:
        return quick_draft(quick_loads(raw), where)
    except ValueError:
        return None


def _draft(raw: bytes, n: int) -> Draft:
    """One import line as a ``Draft``, its fields not yet validated against the catalog."""
    where = f"line {n}"
    if len(raw) > MAX_LINE_BYTES:
        raise EventValidationError(f"{where}: line is {len(raw)} bytes, over {MAX_LINE_BYTES}")
    return draft_from_object(loads(raw, where), where)


def draft_from_object(obj: object, where: str) -> Draft:
    """A parsed import line (or a service request's draft) as a ``Draft``: the fields of
    SPEC §5 ``import``, none that the ledger assigns; not yet validated against the catalog."""
    if (
        type(obj) is dict
        and obj.keys() <= DRAFT_FIELDS
        and "payload" in obj
        and type(obj.get("type")) is str
    ):  # the usual draft, in one test of its keys; the checks below name what is wrong
        get = obj.get
        return Draft(obj["type"], obj["payload"], get("agent"), get("run"), get("actor"), get("id"))
    if not isinstance(obj, dict):
        raise EventValidationError(f"{where}: expected a JSON object")
    assigned = [k for k in LEDGER_FIELDS if k in obj]
    if assigned:
        raise EventValidationError(
            f"{where}: field {assigned[0]!r} is assigned by the ledger and cannot be imported"
        )
    unknown = sorted(set(obj) - DRAFT_FIELDS)
    if unknown:
        raise EventValidationError(f"{where}: unknown field {unknown[0]!r}")
    if "type" not in obj:
        raise EventValidationError(f"{where}: missing field 'type'")
    if "payload" not in obj:
        raise EventValidationError(f"{where}: missing field 'payload'")
    if not isinstance(obj["type"], str):
        raise EventValidationError(f"{where}: type must be a string")
    return Draft(
        type=obj["type"],
        payload=obj["payload"],
        agent=obj.get("agent"),
        run=obj.get("run"),
        actor=obj.get("actor"),
        id=obj.get("id"),
    )


def check_import(lines: Iterable[bytes], name: str = "input") -> int:
    """Pass 1: validate every line, keeping nothing but the ids seen; return the number of
    events. Raises one ``InputError`` listing every bad line (up to 20, then a count)."""
    errors: list[str] = []
    bad = 0
    good = 0
    ids: dict[str, int] = {}
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            draft = parse_line(raw.rstrip(b"\n").rstrip(b"\r"), n)
        except LedgerError as e:
            bad += 1
            if len(errors) < MAX_REPORTED:
                errors.append(e.message)
            continue
        if draft.id is not None:
            if draft.id in ids:
                bad += 1
                if len(errors) < MAX_REPORTED:
                    errors.append(f"line {n}: id {draft.id!r} repeats line {ids[draft.id]}")
                continue
            ids[draft.id] = n
        good += 1
    if errors:
        more = f"\n… and {bad - len(errors)} more bad lines" if bad > len(errors) else ""
        head = f"{name}: {bad} bad line{'s' if bad > 1 else ''}, nothing imported:\n"
        raise InputError(head + "\n".join(errors) + more)
    return good


def read_import(lines: Iterable[bytes], name: str = "input") -> list[Draft]:
    """Every draft of a small import, validated (for library callers; the CLI streams)."""
    buffered = list(lines)
    check_import(buffered, name)
    return [d.draft for d in _prepared(buffered)]


def _prepared(lines: Iterable[bytes]) -> Iterator[Prepared]:
    """Pass 2: the drafts of a checked file, validated again by the store's append as it
    chains them (the file may have changed since pass 1)."""
    for n, raw in enumerate(lines, start=1):
        if raw.strip():
            line, where = raw.rstrip(b"\n").rstrip(b"\r"), f"line {n}"
            yield Prepared(_quick_line(line, where) or _draft(line, n), None, where)


@dataclass(frozen=True)
class Imported:
    count: int
    first_seq: int | None
    last_seq: int | None


def import_file(
    ledger: Store,
    path: str,
    *,
    signer: Signer,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> Imported:
    """Append the events of a JSON Lines file (``-``: stdin) all or nothing, in constant memory.

    (1) Pass 1 validates every line (nothing kept but ids). (2) Pass 2 parses the file again
    and appends it chunk by chunk inside ONE write transaction, so the import is whole or
    absent, even if the process is killed. Stdin is spooled to a temporary file first.
    ``total`` is told the number of events after pass 1 (for a progress bar).
    """
    with _source(path) as f:
        count = check_import(f, path)
        if total is not None:
            total(count)
        f.seek(0)
        first: int | None = None
        last: int | None = None
        if count == 0:
            return Imported(0, None, None)
        chunk: list[Prepared] = []
        with ledger.write() as tx:
            for p in _prepared(f):
                chunk.append(p)
                if len(chunk) >= CHUNK:
                    events = tx.append(chunk, signer=signer, progress=progress)
                    first = first or events[0].seq
                    last, chunk = events[-1].seq, []
            if chunk:
                events = tx.append(chunk, signer=signer, progress=progress)
                first = first or events[0].seq
                last = events[-1].seq
    return Imported(count, first, last)


@contextmanager
def _source(path: str) -> Iterator[IO[bytes]]:
    if path != "-":
        try:
            f = open(path, "rb")  # noqa: SIM115
        except OSError as e:
            raise InputError(f"{path}: cannot read: {e.strerror}") from e
        with f:
            yield f
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        yield spool
