"""The typed-payload fast path of canonical encoding agrees with the full one, and still
refuses what the walk refuses, naming the field."""

from __future__ import annotations

import enum

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import EncodingError, EventValidationError
from ledger.event.canonical import MAX_SAFE_INTEGER, canonical, canonical_of_typed
from ledger.store.sqlite import TYPED_PAYLOADS, Draft, prepare

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@given(
    tool=text,
    side_effect=text,
    n=st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    tools=st.lists(text, max_size=4),
)
def test_typed_fast_path_is_byte_identical_to_rfc8785(
    tool: str, side_effect: str, n: int, tools: list[str]
) -> None:
    value = {"tool": tool, "side_effect": side_effect, "duration_ms": n, "tools": tools,
             "ok": True, "none": None, "nested": {"b": [n, tool], "a": side_effect}}  # fmt: skip
    assert canonical_of_typed(value) == canonical(value) == rfc8785.dumps(value)


def test_typed_fast_path_still_refuses_big_integers_and_lone_surrogates() -> None:
    with pytest.raises(EncodingError, match=r"^\$\.n: integer 9007199254740992 is outside"):
        canonical_of_typed({"n": MAX_SAFE_INTEGER + 1})
    with pytest.raises(EncodingError, match=r"^\$\.s: string holds a lone surrogate"):
        canonical_of_typed({"s": "a\ud800"})
    # 16 digits inside a string are fine: the full check gives the verdict.
    assert canonical_of_typed({"s": "1234567890123456"}) == b'{"s":"1234567890123456"}'


def test_free_form_payload_types_take_the_full_walk() -> None:
    assert {"policy.set", "tier.promoted", "tier.demoted", "tier.revoked"}.isdisjoint(
        TYPED_PAYLOADS
    )
    assert "x.note" not in TYPED_PAYLOADS
    with pytest.raises(EncodingError, match=r"payload\.v: float 1\.5 is not allowed"):
        prepare(Draft("x.note", {"v": 1.5}))


def test_a_huge_integer_in_a_typed_payload_is_refused_at_prepare() -> None:
    payload = {"tool": "t", "status": "ok", "duration_ms": 2**60}
    with pytest.raises((EncodingError, EventValidationError), match="duration_ms"):
        prepare(Draft("tool.completed", payload, agent="a", run="r"))


@pytest.mark.parametrize(
    "value",
    [
        {"l": [MAX_SAFE_INTEGER + 1]},
        {"l": [1, -(MAX_SAFE_INTEGER + 1)]},
        {"a": {"b": -(MAX_SAFE_INTEGER + 1)}},
        {"l": [[10**20]]},
    ],
)
def test_typed_fast_path_finds_big_integers_wherever_they_stand(value: object) -> None:
    """orjson refuses an integer beyond 2^53 at any depth; the full walk names it."""
    with pytest.raises(EncodingError, match="is outside"):
        canonical_of_typed(value)


class _Text(str):
    pass


class _Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "value",
    [
        {"s": "\U0001f600 after \ue000 and \uffff"},  # values outside the BMP
        {"\U0001f600": 1, "\uff61": 2},  # keys outside the BMP: UTF-16 order, not code points
        {"s": '\x00\x08\t\n\x0b\x0c\r\x1f\x7f\u2028\u2029/"\\'},
        {"s": _Text("a subclass of str")},
        {"n": _Level.HIGH, "t": True, "f": False},
        {"t": ("a", "tuple")},
        ["a", 1, None, [True]],
        {},
    ],
)
def test_typed_fast_path_matches_rfc8785_at_its_edges(value: object) -> None:
    """Where orjson could differ from RFC 8785 (key order outside the BMP, escapes,
    subclasses, enums, tuples), the bytes are still the reference's."""
    assert canonical_of_typed(value) == rfc8785.dumps(value)


def test_typed_fast_path_refuses_what_json_cannot_hold_naming_the_field() -> None:
    """orjson would write a datetime or a UUID-like dataclass; here they go to the full walk,
    which refuses them with the field's path."""
    import dataclasses
    import datetime

    @dataclasses.dataclass
    class Point:
        x: int

    with pytest.raises(EncodingError, match=r"^\$\.when: value of type datetime is not JSON"):
        canonical_of_typed({"when": datetime.datetime(2026, 1, 1)})
    with pytest.raises(EncodingError, match=r"^\$\.p: value of type Point is not JSON"):
        canonical_of_typed({"p": Point(1)})
