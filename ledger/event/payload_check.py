"""Payload validation for the reading paths, without pydantic (SPEC §2.4).

``payload_checker(type)`` is a ``pydantic_core.SchemaValidator`` of the schema
``ledger.event.catalog_schemas`` holds for the type: the catalog model's own schema with
``typed-dict`` in place of ``model`` (generated from the models; a test compares verdicts and
messages). It validates without building a model, which is all ``verify`` and ``runs show``
need; writing and folding still decode to the models (``ledger.event.envelope.decode_payload``).
Importing this module imports pydantic-core (the compiled validator), not pydantic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from pydantic_core import SchemaValidator

from ledger.event.catalog_schemas import CATALOG_TYPES, SCHEMAS, TIME_FIELDS
from ledger.event.payload_rules import ts_form

if TYPE_CHECKING:
    from pydantic_core.core_schema import CoreSchema

__all__ = [
    "CATALOG_TYPES",
    "TIME_FIELDS",
    "format_validation",
    "payload_checker",
    "stored_time_problem",
    "with_ts_times",
]

_CHECKERS: dict[str, SchemaValidator] = {}


def payload_checker(event_type: str) -> SchemaValidator | None:
    """The validator of the payload (without ``type``) of catalog type ``event_type``, built on
    first use; None for any other type."""
    checker = _CHECKERS.get(event_type)
    if checker is None:
        schema = SCHEMAS.get(event_type) if type(event_type) is str else None
        if schema is None:
            return None
        checker = _CHECKERS[event_type] = SchemaValidator(cast("CoreSchema", schema))
    return checker


def format_validation(errors: Sequence[Any], where: str, *, tagged: bool) -> str:
    """The message users see for a payload's validation errors (``ValidationError.errors()``):
    at most five, each naming its field. ``tagged``: the locations start with the discriminator's
    tag (the errors of ``catalog.PAYLOAD_ADAPTER``), which is not a field."""
    parts = []
    for err in errors[:5]:
        path = err["loc"][1:] if tagged else err["loc"]
        loc = ".".join(str(p) for p in path if p != "type") if err["loc"] else ""
        field = f"payload.{loc}" if loc else "payload"
        if err["type"] == "missing":
            parts.append(f"{field}: missing required field")
        elif err["type"] == "extra_forbidden":
            parts.append(f"{field}: unknown field")
        else:
            parts.append(f"{field}: {err['msg']}")
    more = len(errors) - 5
    tail = f" (and {more} more)" if more > 0 else ""
    return f"{where}: " + "; ".join(parts) + tail


def with_ts_times(event_type: str, payload: dict[str, Any], model: Any) -> dict[str, Any]:
    """``payload`` with each time field in the ``ts`` form its validated ``model`` holds: the
    same object when nothing changes, else a copy (the writer stores this one)."""
    fields = TIME_FIELDS.get(event_type)
    if not fields:
        return payload
    changed = {
        name: getattr(model, name)
        for name in fields
        if payload.get(name) is not None and payload[name] != getattr(model, name)
    }
    return {**payload, **changed} if changed else payload


def stored_time_problem(event_type: str, payload: dict[str, Any]) -> str | None:
    """Why a stored (already validated) payload's time is not in ``ts`` form, or None: the
    writer stores only that form, so any other spelling is ``malformed``."""
    for name in TIME_FIELDS.get(event_type, ()):
        value = payload.get(name)
        if value is not None and ts_form(value) != value:
            return (
                f"payload.{name}: {value!r} is not in the stored form "
                f"{ts_form(value)!r} (UTC, six fractional digits, Z)"
            )
    return None


CATALOG_TYPE_SET = frozenset(CATALOG_TYPES)
"""``CATALOG_TYPES`` for membership tests."""
