"""The envelope's framing rules (SPEC §2.1): its fields, in order, and what each may hold.

One rule set, used the same way by the writer (``ledger.event.envelope.check_type`` and
``check_envelope``), by ``verify`` on a ledger and on an exported file, and by ``runs show``
(which verifies through ``ledger.verify.verifier``). A string the writer refuses is ``malformed`` for
every verifier. Patterns are whole-string matches over ASCII (``fullmatch``, explicit
``[0-9]``): no trailing newline slips past a ``$``, no non-ASCII digit past a ``\\d``.

Plain Python and ``re`` only, so an offline verifier can reuse it.
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from typing import Any

ENVELOPE_VERSION = 1
ZERO_HASH = "0" * 64
"""``prev`` of seq 1."""

ENVELOPE_FIELDS = (
    "v",
    "seq",
    "id",
    "ts",
    "type",
    "agent",
    "run",
    "actor",
    "payload",
    "prev",
    "key",
    "hash",
    "sig",
)
"""The full envelope, in SPEC §2.1's order (encoding sorts keys; this order is for reading)."""

ROW_FIELDS = ENVELOPE_FIELDS[1:]
"""A stored event's columns, in the order of a row: all of the envelope but ``v``."""

ROW_COLUMNS = ", ".join(ROW_FIELDS)
"""``ROW_FIELDS`` as an SQL column list."""

TEXT_FIELDS = ("id", "agent", "run", "actor")
"""Free-text envelope fields: any text within a length limit (``id`` may not be null)."""

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 256
"""Longest ``agent``, ``run`` or ``actor`` (and name fields of payloads)."""

TS_RE = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}Z",
    re.ASCII,
)
"""``ts``: RFC 3339 UTC with exactly six fractional digits and ``Z`` (use ``fullmatch``)."""
HEX64_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
"""``prev``, ``hash``: lowercase hex SHA-256 (use ``fullmatch``)."""
HEX32_RE = re.compile(r"[0-9a-f]{32}", re.ASCII)
"""``key``: a key id, lowercase hex (use ``fullmatch``)."""
USER_TYPE_RE = re.compile(r"x\.[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*", re.ASCII)
"""A user-defined ``type``: ``x.<name>``, dot-separated parts of lowercase letters, digits,
``_`` and ``-`` (use ``fullmatch``)."""

SIG_BYTES = 64
"""``sig``: canonical padded base64 of an Ed25519 signature (``signing.b64decode_canonical``)."""


def is_ts(value: Any) -> bool:
    """True when ``value`` is a ``ts`` the ledger writes: the pattern, on a calendar date."""
    if type(value) is not str or TS_RE.fullmatch(value) is None:
        return False
    # Every month has days 1–28; only the 29th to 31st need the calendar.
    return value[8:10] < "29" or _real_date(value[:10])


@lru_cache(maxsize=1024)
def _real_date(day: str) -> bool:
    try:
        date.fromisoformat(day)
    except ValueError:
        return False
    return True


def is_hex64(value: Any) -> bool:
    return type(value) is str and HEX64_RE.fullmatch(value) is not None


def is_hex32(value: Any) -> bool:
    return type(value) is str and HEX32_RE.fullmatch(value) is not None


def is_user_type(value: Any) -> bool:
    return type(value) is str and USER_TYPE_RE.fullmatch(value) is not None


def plain_text(value: Any) -> bool:
    """The common case of a text field, decided fast: null, or 1–128 ASCII characters (good for
    every text field). False means only: ask ``text_problem``."""
    return value is None or (type(value) is str and value.isascii() and 0 < len(value) <= 128)


def text_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the text field ``name`` (``TEXT_FIELDS``), or None if it can.

    ``None`` passes here for every field (the writer generates a missing ``id``; a stored one
    must be present, which its verifier checks on its own)."""
    if value is None:
        return None
    if name == "id":
        if type(value) is not str or not 0 < len(value) <= MAX_ID_LENGTH:
            return f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters"
    elif type(value) is not str or not 0 < len(value) <= MAX_NAME_LENGTH:
        return f"{name} must be null or a string of 1–{MAX_NAME_LENGTH} characters"
    if not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value):
        # A lone surrogate (a command-line argument, or stored bytes, that were not UTF-8).
        return f"{name} is not valid UTF-8 text (lone surrogate)"
    return None
