"""The quick check of ``canonical`` (no field paths) gives the verdict of the walk that names
fields: the same "needs the reference encoder" answer, and a refusal exactly where the named
walk refuses, whose message is then the named walk's."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.errors import EncodingError
from ledger.event import canonical as c

# Strings with lone surrogates and characters outside the BMP; numbers past 2^53; floats;
# the parser's non-integer marker; tuples; non-string keys; deep nesting.
text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=6)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=True)
    | text
    | text.map(c._NonInteger)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(text | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=20,
)


def verdict(walk: Any, value: Any) -> object:
    try:
        return walk(value)
    except (c._Refused, UnicodeEncodeError, EncodingError):
        return "refused"


@given(values)
@example({"\U0001f600": 1, "a": ["\ud800"]})
@example([[[[1.5]]]])
@example({"k": 2**53})
def test_quick_and_named_walks_agree(value: Any) -> None:
    assert verdict(lambda v: c._quick_walk(v, 0), value) == verdict(
        lambda v: c._named_walk(v, "$", 0), value
    )


def test_depth_is_refused_alike() -> None:
    deep: Any = 1
    for _ in range(c.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(EncodingError, match=r"nested deeper than 64 levels"):
        c.check(deep)
    assert verdict(lambda v: c._quick_walk(v, 0), deep) == "refused"


def test_a_refusal_still_names_its_field() -> None:
    with pytest.raises(EncodingError, match=r"^\$\.a\[1\]\.b: float 1\.5 is not allowed"):
        c.check({"a": [1, {"b": 1.5}]})
