"""The payload rules the catalog's schemas call, without pydantic: the RFC 3339 time check and
the ``model_type`` error of a nested object.

``ledger.event.catalog`` (the pydantic models) and ``ledger.event.catalog_schemas`` (the same
schemas as plain pydantic-core schemas, for the reading paths) both call these, so both give
the same verdicts and messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic_core import PydanticCustomError, PydanticKnownError

_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",  # RFC 3339 time-numoffset
    re.ASCII,
)


def ts_form(value: str) -> str:
    """An RFC 3339 time with an offset as the ledger's ``ts`` form (UTC, six fractional
    digits, ``Z``), so one instant has one spelling in stored payloads (SPEC §2.1).

    ``Z`` or any offset (converted to UTC), zero to six fractional digits. A time without an
    offset, another ISO 8601 spelling, or an impossible date or time raises ``ValueError``."""
    if _RFC3339_RE.fullmatch(value) is None:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.]+", value, re.ASCII):
            raise ValueError(f"{value!r} has no UTC offset; add Z for UTC")
        raise ValueError(
            f"{value!r} is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.ffffff] and Z or an offset)"
        )
    try:
        dt = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        # isoformat, not strftime: ``%Y`` writes year 999 as ``999`` on some platforms.
        utc = dt.astimezone(UTC).replace(tzinfo=None)
        return utc.isoformat(timespec="microseconds") + "Z"
    except (ValueError, OverflowError) as e:
        raise ValueError(f"{value!r} is not a real instant ({e})") from e


def rfc3339_time(value: str) -> str:
    """A payload time field's validator: its ``ts`` form, or the ``rfc3339_time`` error."""
    try:
        return ts_form(value)
    except ValueError as e:
        raise PydanticCustomError("rfc3339_time", str(e)) from None


def model_input(class_name: str) -> Callable[[Any], Any]:
    """The check a nested payload object (a pydantic model in the catalog, a ``typed-dict``
    in ``catalog_schemas``) makes first: anything but a dict gets the model's own error
    (``model_type``, "Input should be a valid dictionary or instance of ``class_name``")."""

    def check(value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticKnownError("model_type", {"class_name": class_name})
        return value

    check.__qualname__ = f"model_input({class_name!r})"
    return check
