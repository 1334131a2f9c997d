"""Reading ``govledger import`` files: JSON Lines of drafts, all or nothing (SPEC §5).

Every line is parsed and validated before anything is written; every bad line is reported with
its line number, and one bad line means nothing is imported.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.encoding import loads
from ledger.errors import EventValidationError, InputError, LedgerError
from ledger.store import Draft, prepare

DRAFT_FIELDS = frozenset({"type", "payload", "agent", "run", "actor", "id"})
LEDGER_FIELDS = ("v", "seq", "ts", "prev", "key", "hash", "sig")
MAX_LINE_BYTES = 1024 * 1024
MAX_REPORTED = 20


def parse_line(raw: bytes, n: int) -> Draft:
    """One import line as a validated ``Draft``; errors name ``line n``."""
    where = f"line {n}"
    if len(raw) > MAX_LINE_BYTES:
        raise EventValidationError(f"{where}: line is {len(raw)} bytes, over {MAX_LINE_BYTES}")
    obj = loads(raw, where)
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
    draft = Draft(
        type=obj["type"],
        payload=obj["payload"],
        agent=obj.get("agent"),
        run=obj.get("run"),
        actor=obj.get("actor"),
        id=obj.get("id"),
    )
    prepare(draft, where)
    return draft


def read_import(lines: Iterable[bytes], name: str = "input") -> list[Draft]:
    """Parse every line; raise one ``InputError`` listing every bad line (nothing written)."""
    drafts: list[Draft] = []
    errors: list[str] = []
    count = 0
    ids: dict[str, int] = {}
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            draft = parse_line(raw.rstrip(b"\n").rstrip(b"\r"), n)
        except LedgerError as e:
            count += 1
            if len(errors) < MAX_REPORTED:
                errors.append(e.message)
            continue
        if draft.id is not None:
            if draft.id in ids:
                count += 1
                errors.append(f"line {n}: id {draft.id!r} repeats line {ids[draft.id]}")
                continue
            ids[draft.id] = n
        drafts.append(draft)
    if errors:
        more = f"\n… and {count - len(errors)} more bad lines" if count > len(errors) else ""
        head = f"{name}: {count} bad line{'s' if count > 1 else ''}, nothing imported:\n"
        raise InputError(head + "\n".join(errors) + more)
    return drafts
