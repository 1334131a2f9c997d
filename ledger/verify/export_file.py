"""Reading exported JSON Lines (SPEC §2.1) back into rows for ``verify --file``.

Each line must be exactly the RFC 8785 form of a full envelope followed by ``\\n``; a line
that cannot be framed is returned as a ``malformed`` problem at the seq it should have held.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ledger.errors import DecodeError, LedgerError
from ledger.event.canonical import canonical, loads
from ledger.event.framing import ENVELOPE_FIELDS, ENVELOPE_VERSION, ROW_FIELDS
from ledger.verify.chain import Problem

ENVELOPE_KEYS = frozenset(ENVELOPE_FIELDS)
"""The fields of a full envelope (SPEC §2.1)."""

Row = tuple[Any, ...]


def _json(value: Any) -> str:
    """A short JSON spelling of ``value`` for a message."""
    text = canonical(value).decode("utf-8")
    return text if len(text) <= 40 else text[:40] + "..."


def rows_from_export(lines: Iterable[bytes]) -> Iterator[Row | Problem]:
    """Rows from an exported JSON Lines file; a line that cannot be framed is a Problem.

    A line that parses but is not in canonical form gives a Problem and then its row."""
    expected = 1
    for n, raw in enumerate(lines, start=1):
        if not raw.endswith(b"\n"):
            yield Problem(expected, "malformed", f"line {n}: no final newline (truncated file?)")
            return
        try:
            env = loads(raw[:-1], f"line {n}")
            if not isinstance(env, dict):
                raise DecodeError(f"line {n}: not a JSON object")
            if set(env) != ENVELOPE_KEYS:
                missing = sorted(ENVELOPE_KEYS - set(env))
                extra = sorted(set(env) - ENVELOPE_KEYS)
                raise DecodeError(
                    f"line {n}: envelope fields: missing {missing}, unexpected {extra}"
                )
            # ``true`` equals 1 in Python but is another JSON value: the bytes hashed by an
            # independent verifier would differ, so it is refused here, not read as 1.
            if isinstance(env["seq"], bool):
                raise DecodeError(f"line {n}: seq is {_json(env['seq'])}, expected an integer")
            if not isinstance(env["payload"], dict):
                raise DecodeError(f"line {n}: payload is not an object")
            # A wrong v or a line not in canonical form is reported, and the event's fields
            # still checked and chained (as the database path does), so one such line does not
            # cascade into chain problems.
            at = env["seq"] if type(env["seq"]) is int and env["seq"] >= 1 else expected
            if type(env["v"]) is not int or env["v"] != ENVELOPE_VERSION:
                # ``type``, not ``==``: JSON true equals 1 in Python.
                found = canonical(env["v"]).decode()
                yield Problem(
                    at, "malformed", f"line {n}: v is {found}, expected {ENVELOPE_VERSION}"
                )
            elif canonical(env) + b"\n" != raw:
                yield Problem(at, "malformed", f"line {n}: not in canonical form (RFC 8785)")
        except LedgerError as e:
            seq = expected
            yield Problem(seq, "malformed", e.message)
            expected += 1
            continue
        seq = env["seq"]
        expected = (seq if type(seq) is int and seq >= 1 else expected) + 1
        env["payload"] = canonical(env["payload"]).decode("utf-8")
        yield tuple(env[name] for name in ROW_FIELDS)
