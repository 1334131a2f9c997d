"""Exported rows: the stored row of an event and its canonical line, shared by every export format."""

from __future__ import annotations

from typing import Any

import orjson

from ledger.errors import VerificationError

Row = tuple[int, str, str, str, str | None, str | None, str | None, str, str, str, str, str]
"""A stored event row: seq, id, ts, type, agent, run, actor, payload, prev, key, hash, sig."""

ExportItem = tuple[Row, bytes]
"""A stored row with its canonical envelope line (with the final ``\\n``)."""


def stored_payload(row: Row) -> dict[str, Any]:
    """The payload of a stored row as Python objects; a payload that is not a JSON object is
    an integrity failure naming the seq (the store holds canonical JSON objects only)."""
    try:
        value = orjson.loads(row[7])
    except orjson.JSONDecodeError as e:
        raise VerificationError(
            f"seq {row[0]}: stored payload is not JSON ({e}); run `govledger verify`"
        ) from e
    if not isinstance(value, dict):
        raise VerificationError(
            f"seq {row[0]}: stored payload is a {type(value).__name__}, expected a JSON object; "
            "run `govledger verify`"
        )
    return value


def unencodable(row: Row, e: Exception) -> VerificationError:
    """The error for a stored row holding text no JSON document can carry (a lone surrogate from
    bytes that are not UTF-8): an integrity failure naming the seq."""
    return VerificationError(
        f"seq {row[0]}: stored text cannot be exported ({e}); run `govledger verify`"
    )
