"""The typed-payload fast path of canonical encoding agrees with the full one, and still
refuses what the walk refuses, naming the field."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ledger.encoding import MAX_SAFE_INTEGER, canonical, canonical_of_typed
from ledger.errors import EncodingError, EventValidationError
from ledger.store import TYPED_PAYLOADS, Draft, prepare

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
    """Numbers follow ``:``, ``,`` or ``[`` in the encoder's output; each place is caught."""
    with pytest.raises(EncodingError, match="is outside"):
        canonical_of_typed(value)
