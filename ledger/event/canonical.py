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
``canonical_of_typed()`` (payloads already validated by a strict catalog model) writes with
``orjson`` under the same kind of guard, also pinned byte-identical by property tests.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
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


class _Refused(Exception):
    """Raised by ``_quick_walk`` at anything ``_named_walk`` refuses."""


def _walk(value: Any, path: str, depth: int) -> bool:
    """Check ``value`` is canonically encodable; return True when the slow path is needed.

    The quick walk builds no field paths (most of the cost of a walk); only a value it refuses
    is walked again, naming the field in the error."""
    try:
        return _quick_walk(value, depth)
    except (_Refused, UnicodeEncodeError):
        return _named_walk(value, path, depth)


def _quick_walk(value: Any, depth: int) -> bool:
    """``_named_walk`` without the paths: the same verdict, ``_Refused`` (or
    ``UnicodeEncodeError``) where it raises."""
    t = type(value)
    if t is str:
        if not value.isascii():
            value.encode("utf-8")
        return False
    if t is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return False
        raise _Refused
    if t is bool or value is None:
        return False
    if depth > MAX_DEPTH:
        raise _Refused
    slow = False
    if t is dict:
        for k, v in value.items():
            if type(k) is not str:
                raise _Refused
            if not k.isascii():
                k.encode("utf-8")
                slow |= max(k) > "\uffff"
            if type(v) is str:
                if not v.isascii():
                    v.encode("utf-8")
            else:
                slow |= _quick_walk(v, depth + 1)
        return slow
    if t is list or t is tuple:
        for v in value:
            slow |= _quick_walk(v, depth + 1)
        return slow
    raise _Refused  # a float, a number kept as _NonInteger, or not JSON


def _named_walk(value: Any, path: str, depth: int) -> bool:
    """Check ``value`` is canonically encodable, naming the field of what is not; return True
    when the slow path is needed."""
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
            slow |= _named_walk(v, f"{path}.{k}", depth + 1)
        return slow
    if t is list or t is tuple:
        for i, v in enumerate(value):
            slow |= _named_walk(v, f"{path}[{i}]", depth + 1)
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


ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
"""``orjson`` as RFC 8785 writes a value of plain JSON types with keys inside the Basic
Multilingual Plane: keys sorted (code point order, which is UTF-16 order there), integers
beyond ±(2^53 − 1) refused, datetimes and dataclasses refused instead of converted (the
caller's fallback decides); subclasses of str and int (enums) are written as their values, as
the standard library writes them. Its string escapes are RFC 8785's (tested with
hypothesis)."""


def canonical_of_typed(value: Any, path: str = "$") -> bytes:
    """RFC 8785 bytes of a value already validated by a strict model without free-form fields.

    Such a value holds only fixed ASCII keys, strings, booleans, null, lists and integers, so
    the walk of ``canonical`` can be skipped and ``orjson`` writes the bytes (ten times faster
    than the standard library): what the walk would catch, ``orjson`` refuses (an integer
    beyond 2^53, a lone surrogate, a non-JSON type), and then ``canonical`` gives the exact
    verdict and message.
    """
    try:
        out = orjson.dumps(value, option=ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError included
        return canonical(value, path)
    # A character outside the BMP (lead byte F0–F4) is where key orders could part: such a
    # value, which a typed payload only holds in its strings, takes the reference path.
    if out.isascii() or max(out) < 0xF0:
        return out
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
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen.add(k)
    raise AssertionError("unreachable: fewer keys than pairs means a key repeats")


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


def quick_loads(data: bytes) -> Any:
    """Parse JSON with ``jiter`` (pydantic's parser, in Rust: about half the time of ``loads``),
    for a value that a strict model validates next; ``ValueError`` when it refuses.

    It refuses what ``loads`` refuses at the syntax level: invalid JSON or UTF-8, NaN and
    Infinity, lone surrogates, duplicate keys (escaped spellings included), trailing data. It
    does not check the values: a number with a fraction or an exponent comes back as a
    ``jiter.LosslessFloat``, which no model, encoder or check here accepts, and integers are
    not range-checked. So a value from here is used only once it has passed
    ``ledger.event.drafts.prepare`` as a draft of a type with a fully typed payload
    (``TYPED_PAYLOADS``: every field strictly typed, integers range-checked when encoded), and
    on any refusal the caller parses again with ``loads``, whose error names the place.
    """
    import jiter  # here: the reading commands never parse with it

    return jiter.from_json(
        data,
        allow_inf_nan=False,
        catch_duplicate_keys=True,
        float_mode="lossless-float",
        cache_mode="keys",
    )
