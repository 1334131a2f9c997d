"""Canonical JSON bytes (RFC 8785, JSON Canonicalization Scheme) and strict JSON parsing.

SPEC §2.2: signed content is the RFC 8785 form of the event body. Floats, NaN, non-string
keys, duplicate keys, integers beyond ±(2^53 − 1) and lone surrogates are refused at the
boundary with an error that names the field.

``canonical()`` has a fast path: for values made only of objects with string keys, arrays,
strings, integers, booleans and null, RFC 8785 output is exactly what the standard library's
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` writes, with one
exception: RFC 8785 sorts keys by UTF-16 code units, Python by code points, and the two orders
differ only when a key holds a character outside the Basic Multilingual Plane. Such values go to
the reference ``rfc8785`` package. A hypothesis property test pins the two byte-identical.
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

from ledger.errors import DecodeError, EncodingError

MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 64

_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def _check_str(s: str, path: str, what: str) -> bool:
    """Return True when ``s`` needs the reference encoder (a key outside the BMP)."""
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise EncodingError(f"{path}: {what} holds a lone surrogate at index {e.start}") from e
    return what == "key" and max(s) > "\uffff"


def _walk(value: Any, path: str, depth: int) -> bool:
    """Check ``value`` is canonically encodable; return True when the slow path is needed."""
    slow = False
    t = type(value)
    if t is _NonInteger:
        raise EncodingError(
            f"{path}: number {value} is not an integer; signed content holds no floats "
            "(use micro-units, basis points, milliseconds)"
        )
    if t is str:
        return _check_str(value, path, "string")
    if t is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return False
        raise EncodingError(f"{path}: integer {value} is outside ±(2^53 − 1)")
    if t is bool or value is None:
        return False
    if depth > MAX_DEPTH:
        raise EncodingError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise EncodingError(f"{path}: key {k!r} is not a string")
            slow |= _check_str(k, f"{path}.{k}", "key")
            slow |= _walk(v, f"{path}.{k}", depth + 1)
        return slow
    if t is list or t is tuple:
        for i, v in enumerate(value):
            slow |= _walk(v, f"{path}[{i}]", depth + 1)
        return slow
    if t is float:
        raise EncodingError(
            f"{path}: float {value!r} is not allowed in signed content; use integers "
            "(micro-units, basis points, milliseconds)"
        )
    raise EncodingError(f"{path}: value of type {t.__name__} is not JSON")


def check(value: Any, path: str = "$") -> None:
    """Raise ``EncodingError`` naming the field when ``value`` has no canonical encoding."""
    _walk(value, path, 0)


_SUSPECT_TEXT = re.compile(r"[:,\[]-?[0-9]{16}")
"""A number of 16 or more digits in the encoder's output: numbers follow ``:``, ``,`` or
``[`` there (no spaces), so digits inside strings (hex digests) rarely match, and searching
for the delimiter first is twice as fast as for the digits."""


def canonical_of_typed(value: Any, path: str = "$") -> bytes:
    """RFC 8785 bytes of a value already validated by a strict model without free-form fields.

    Such a value holds only fixed ASCII keys, strings, booleans, null, lists and integers, so
    the walk of ``canonical`` can be skipped: what it would catch is checked on the output (a
    number of 16+ digits may be beyond 2^53; a lone surrogate fails to encode), and
    anything suspect goes through ``canonical`` for the exact verdict and message.
    """
    text = _dumps(value)
    if _SUSPECT_TEXT.search(text):
        return canonical(value, path)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return canonical(value, path)


def canonical(value: Any, path: str = "$") -> bytes:
    """RFC 8785 bytes of ``value``; ``EncodingError`` naming ``path`` for what has none."""
    if _walk(value, path, 0):
        return rfc8785.dumps(value)
    return _dumps(value).encode("utf-8")


# --- strict parsing ----------------------------------------------------------------------


class _NonInteger(str):
    """A number the parser saw as float, NaN or Infinity: kept so the error can name its field."""


def _no_float(s: str) -> Any:
    return _NonInteger(s)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r}")
        d[k] = v
    return d


_decoder = json.JSONDecoder(
    object_pairs_hook=_pairs, parse_float=_no_float, parse_constant=_no_float
)


def loads(text: str | bytes, where: str = "input") -> Any:
    """Parse JSON strictly: no floats, NaN, Infinity or duplicate keys; UTF-8 only.

    ``where`` names the place for the error message (``line 3``, ``--payload``).
    Values are then checked with ``check`` (integer range, lone surrogates).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"{where}: not UTF-8 (byte {e.start})") from e
    try:
        value, end = _decoder.raw_decode(text.strip(" \t\r\n"))
    except json.JSONDecodeError as e:
        raise DecodeError(
            f"{where}: invalid JSON: {e.msg.removesuffix(' at')} at column {e.colno}"
        ) from e
    except ValueError as e:
        raise DecodeError(f"{where}: invalid JSON: {e}") from e
    except RecursionError as e:
        raise DecodeError(f"{where}: invalid JSON: nested too deeply") from e
    rest = text.strip(" \t\r\n")[end:]
    if rest:
        raise DecodeError(f"{where}: invalid JSON: extra data after the value")
    try:
        check(value)
    except EncodingError as e:
        raise DecodeError(f"{where}: {e.message}") from e
    return value
