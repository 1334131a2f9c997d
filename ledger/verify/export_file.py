"""Reading exported JSON Lines (SPEC §2.1) back into rows for ``verify --file``.

Each line must be exactly the RFC 8785 form of a full envelope followed by ``\\n``; a line
that cannot be framed is returned as a ``malformed`` problem at the seq it should have held.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any

from ledger.errors import DecodeError, LedgerError
from ledger.event.canonical import canonical, loads
from ledger.event.envelope import ENVELOPE_VERSION, Event
from ledger.verify.chain import Problem

ENVELOPE_KEYS = frozenset(f.name for f in fields(Event))
"""The fields of a full envelope (SPEC §2.1): those of ``Event``."""

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
            if type(env["v"]) is not int or env["v"] != ENVELOPE_VERSION:
                raise DecodeError(f"line {n}: v is {_json(env['v'])}, expected {ENVELOPE_VERSION}")
            if isinstance(env["seq"], bool):
                raise DecodeError(f"line {n}: seq is {_json(env['seq'])}, expected an integer")
            if not isinstance(env["payload"], dict):
                raise DecodeError(f"line {n}: payload is not an object")
            if canonical(env) + b"\n" != raw:
                # Reported, and its fields still checked and chained (as the database path
                # does), so one reformatted line does not cascade into chain problems.
                yield Problem(
                    env["seq"] if isinstance(env["seq"], int) else expected,
                    "malformed",
                    f"line {n}: not in canonical form (RFC 8785)",
                )
        except LedgerError as e:
            seq = expected
            yield Problem(seq, "malformed", e.message)
            expected += 1
            continue
        payload_text = canonical(env["payload"]).decode("utf-8")
        seq = env["seq"]
        expected = (seq if isinstance(seq, int) else expected) + 1
        yield (
            seq,
            env["id"],
            env["ts"],
            env["type"],
            env["agent"],
            env["run"],
            env["actor"],
            payload_text,
            env["prev"],
            env["key"],
            env["hash"],
            env["sig"],
        )
