"""Canonical bytes (SPEC §2.2): byte-identical to the RFC 8785 reference, and strict parsing
that refuses what signed content may not hold, naming the field."""

from __future__ import annotations

import json

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from ledger.errors import DecodeError, EncodingError
from ledger.event.body import _str as chain_str
from ledger.event.canonical import MAX_SAFE_INTEGER, canonical, check, loads
from ledger.verify.chain import check_canonical_payload

NO_FLOAT = "signed content holds no floats (use micro-units, basis points, milliseconds)"

# Strings mixing ASCII, control characters, U+2028/U+2029, BMP and non-BMP characters, but no
# lone surrogates (category Cs).
special = st.sampled_from(
    [
        "\u2028",
        "\u2029",
        "\x00",
        "\x1f",
        "\x7f",
        '"',
        "\\",
        "/",
        "\U0001f600",
        "\U00010000",
        "\uffff",
        "\ue000",
        "é",
        "\u0301",
    ]
)
text = st.lists(st.one_of(st.characters(blacklist_categories=("Cs",)), special), max_size=12).map(
    "".join
)
safe_int = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
scalars = st.one_of(st.none(), st.booleans(), safe_int, text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(text, children, max_size=5)
    ),
    max_leaves=25,
)


@given(json_values)
def test_canonical_is_byte_identical_to_rfc8785(value: object) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@given(st.dictionaries(text, json_values, max_size=6))
def test_canonical_object_round_trips_through_strict_loads(value: dict[str, object]) -> None:
    encoded = canonical(value)
    assert loads(encoded) == value
    assert canonical(loads(encoded)) == encoded


def test_keys_outside_the_bmp_sort_by_utf16_code_units() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+FFFF; code points say the opposite.
    value = {"\uffff": 1, "\U0001f600": 2}
    assert canonical(value) == '{"\U0001f600":2,"\uffff":1}'.encode()
    assert canonical(value) == rfc8785.dumps(value)


def test_u2028_and_controls_are_written_as_rfc8785_says() -> None:
    assert canonical({"a": "\u2028\n\x01"}) == b'{"a":"\xe2\x80\xa8\\n\\u0001"}'


def test_tuples_encode_as_arrays() -> None:
    assert canonical({"a": (1, 2)}) == b'{"a":[1,2]}'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            {"a": [1, {"b": 1.5}]},
            "$.a[1].b: float 1.5 is not allowed in signed content; "
            "use integers (micro-units, basis points, milliseconds)",
            id="float",
        ),
        pytest.param(
            {"a": 1.0},
            "$.a: float 1.0 is not allowed in signed content; "
            "use integers (micro-units, basis points, milliseconds)",
            id="integral-float",
        ),
        pytest.param(
            {"a": float("nan")},
            "$.a: float nan is not allowed in signed content; "
            "use integers (micro-units, basis points, milliseconds)",
            id="nan",
        ),
        pytest.param(
            {"a": float("inf")},
            "$.a: float inf is not allowed in signed content; "
            "use integers (micro-units, basis points, milliseconds)",
            id="inf",
        ),
        pytest.param(
            {"x": 2**53}, "$.x: integer 9007199254740992 is outside ±(2^53 − 1)", id="int-above"
        ),
        pytest.param(
            {"x": [-(2**53)]},
            "$.x[0]: integer -9007199254740992 is outside ±(2^53 − 1)",
            id="int-below",
        ),
        pytest.param(
            {"a": "x\udc00y"},
            "$.a: string holds a lone surrogate at index 1",
            id="lone-surrogate-value",
        ),
        pytest.param(
            {"a": {"k\ud800": 1}},
            "$.a.k\ud800: key holds a lone surrogate at index 1",
            id="lone-surrogate-key",
        ),
        pytest.param({1: 2}, "$: key 1 is not a string", id="int-key"),
        pytest.param({"a": {(1, 2): 3}}, "$.a: key (1, 2) is not a string", id="tuple-key"),
        pytest.param({"a": {None: 3}}, "$.a: key None is not a string", id="none-key"),
        pytest.param({"a": b"x"}, "$.a: value of type bytes is not JSON", id="bytes"),
        pytest.param({"a": {1, 2}}, "$.a: value of type set is not JSON", id="set"),
    ],
)
def test_canonical_refuses_and_names_the_field(value: object, message: str) -> None:
    with pytest.raises(EncodingError) as e:
        canonical(value)
    assert e.value.message == message
    with pytest.raises(EncodingError):
        check(value)


def test_canonical_uses_the_given_path() -> None:
    with pytest.raises(EncodingError, match=r"^payload\.cost: float"):
        canonical({"cost": 0.5}, "payload")


def test_safe_integer_bounds_are_accepted() -> None:
    assert (
        canonical([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == b"[9007199254740991,-9007199254740991]"
    )


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    value: object = 1
    for _ in range(70):
        value = [value]
    with pytest.raises(EncodingError, match=r"nested deeper than 64 levels$"):
        canonical(value)


def test_bool_is_not_mistaken_for_an_integer() -> None:
    assert canonical({"t": True, "f": False, "n": None}) == b'{"f":false,"n":null,"t":true}'


# --- strict parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            '{"a":1,"a":2}', "line 3: invalid JSON: duplicate key 'a'", id="duplicate-key"
        ),
        pytest.param(
            '{"a":{"b":[1, 2.5]}}',
            f"line 3: $.a.b[1]: number 2.5 is not an integer; {NO_FLOAT}",
            id="float",
        ),
        pytest.param(
            '{"a":1e5}', f"line 3: $.a: number 1e5 is not an integer; {NO_FLOAT}", id="exponent"
        ),
        pytest.param(
            '{"a":1.0}',
            f"line 3: $.a: number 1.0 is not an integer; {NO_FLOAT}",
            id="integral-float",
        ),
        pytest.param(
            '{"a":NaN}', f"line 3: $.a: number NaN is not an integer; {NO_FLOAT}", id="nan"
        ),
        pytest.param(
            '{"a":-Infinity}',
            f"line 3: $.a: number -Infinity is not an integer; {NO_FLOAT}",
            id="-inf",
        ),
        pytest.param('{"a":', "line 3: invalid JSON: Expecting value at column 6", id="truncated"),
        pytest.param(
            '{"a": "b',
            "line 3: invalid JSON: Unterminated string starting at column 7",
            id="truncated-string",
        ),
        pytest.param("", "line 3: invalid JSON: Expecting value at column 1", id="empty"),
        pytest.param("[1] x", "line 3: invalid JSON: extra data after the value", id="extra-data"),
        pytest.param(
            '{"a": 9007199254740992}',
            "line 3: $.a: integer 9007199254740992 is outside ±(2^53 − 1)",
            id="huge-int",
        ),
        pytest.param(
            '{"a":"\\ud800"}',
            "line 3: $.a: string holds a lone surrogate at index 0",
            id="lone-surrogate",
        ),
        pytest.param(b'{"a":"\xff"}', "line 3: not UTF-8 (byte 6)", id="not-utf8"),
        pytest.param(b'{"a":"\xc3"}', "line 3: not UTF-8 (byte 6)", id="truncated-utf8"),
    ],
)
def test_loads_refuses_and_says_where(text: str | bytes, message: str) -> None:
    with pytest.raises(DecodeError) as e:
        loads(text, "line 3")
    assert e.value.message == message


def test_loads_names_input_by_default() -> None:
    with pytest.raises(DecodeError, match=r"^input: invalid JSON: duplicate key 'k'$"):
        loads(b'{"k":1,"k":1}')


def test_loads_accepts_surrounding_whitespace_and_utf8_bytes() -> None:
    assert loads(' \n{"é": [1, -2, "\u2028"]}\r\n'.encode()) == {"é": [1, -2, "\u2028"]}


def test_duplicate_key_inside_a_nested_object_is_refused() -> None:
    with pytest.raises(DecodeError, match="duplicate key 'x'"):
        loads('{"a": [{"x": 1, "x": 1}]}')


@given(json_values)
def test_loads_inverts_json_dumps(value: object) -> None:
    assert loads(json.dumps(value)) == value


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ('{"x":9007199254740991}', True),  # 16 characters, within 2^53: the full check's call
        ('{"x":-9007199254740991}', True),
        ('{"x":9007199254740992}', False),
        ('{"d":"12345678901234567890"}', True),  # digits in a string are not a number
        ('{"a":"\\u001f"}', True),
        ('{"a":"\\u00e9"}', False),  # escaped where RFC 8785 writes the character
        ('{"a":"\\ud800"}', False),
        ('{"\U0001f600":1,"\uff61":2}', True),  # UTF-16 order: U+1F600 (d83d) before U+FF61
        ('{"\uff61":2,"\U0001f600":1}', False),  # code point order is not RFC 8785's
        ('{"x":1.0}', False),
        ('{"b":1,"a":2}', False),
    ],
)
def test_stored_payload_check_accepts_exactly_canonical_text(text: str, accepted: bool) -> None:
    """``check_canonical_payload`` (verify's per-event check) says canonical exactly when the
    text is RFC 8785's form of its value, whichever of its paths decides."""
    if accepted:
        value = check_canonical_payload(text)
        assert rfc8785.dumps(value).decode("utf-8") == text
    else:
        with pytest.raises(ValueError):
            check_canonical_payload(text)


@given(st.dictionaries(text, json_values, max_size=6))
def test_stored_payload_check_accepts_rfc8785_text_and_refuses_other_spellings(
    value: dict[str, object],
) -> None:
    """Verify's fast check against the reference: RFC 8785's text of any value is accepted
    and parses back to the value; the same value spelled otherwise is refused."""
    canonical_text = rfc8785.dumps(value).decode("utf-8")
    assert check_canonical_payload(canonical_text) == value
    for other in (
        json.dumps(value, ensure_ascii=False),  # spaces after separators
        json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True),
    ):
        if other != canonical_text:
            with pytest.raises(ValueError):
                check_canonical_payload(other)


def test_stored_payload_check_refuses_a_raw_lone_surrogate() -> None:
    with pytest.raises(ValueError):
        check_canonical_payload('{"a":"x\ud800"}')


@given(st.text())
@example("\x7f")
@example('say "hi"')
@example("back\\slash")
@example("nul\x00 tab\t")
@example("line\u2028sep é 😀")
@example("\ud800")
def test_envelope_strings_are_quoted_as_rfc8785_quotes_them(value: str) -> None:
    """The chain's string fast path (quote as is when nothing needs escaping) agrees with the
    reference encoder for any text, control characters, quotes and surrogates included."""
    try:
        expected = rfc8785.dumps(value).decode("utf-8")
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        expected = json.dumps(value, ensure_ascii=False)  # lone surrogates: as the store keeps them
    assert chain_str(value) == expected == json.dumps(value, ensure_ascii=False)
