"""The service's append bodies and ``govledger import``'s lines are read the quick way (``jiter``)
first, and the strict way (the CLI's parser) for whatever the quick way refuses or cannot
judge: for any body or line, the answer is the strict way's, the same drafts or the same error
(kind, status and message)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import LedgerError
from ledger.event.drafts import TYPED_PAYLOADS, Draft, Prepared, prepare
from ledger.exchange import import_lines
from ledger.sample import generate_drafts, import_line
from ledger.service import app, bodies
from ledger.service.tokens import Token

DRAFTS = [
    *(d for _role, d in generate_drafts(600, 6, 11)),
    # Free-form payloads (extension events): only the strict way judges their values.
    Draft("x.note", {"n": 1, "nested": {"list": [1, "two", None, True]}}, "billing-1", "r-9"),
    Draft("x.metric", {"value_bp": 7300, "labels": {"env": "prod"}}, "billing-2"),
]
LINES = [import_line(d) for d in DRAFTS]
TYPED = [line for line, d in zip(LINES, DRAFTS, strict=True) if d.type in TYPED_PAYLOADS]
FREE = [line for line, d in zip(LINES, DRAFTS, strict=True) if d.type not in TYPED_PAYLOADS]
ANY_TOKEN = Token("any", "rec", None, (), "2026-01-01T00:00:00Z", None)
NARROW_TOKEN = Token("narrow", "rec", DRAFTS[-1].agent, ("tool.called",), "2026-01-01", None)
JSON, LINES_TYPE = "application/json", "application/x-ndjson"


def strict(body: bytes, media_type: str, token: Token) -> list[Prepared]:
    """What the service answered before it had a quick way: strict parse, token, validation."""
    drafts = bodies.strict_drafts(body, media_type)
    token.check([(p.draft, p.where) for p in drafts])
    return [prepare(p.draft, p.where) for p in drafts]


def outcome(read: Any, body: bytes, media_type: str, token: Token) -> tuple[Any, ...]:
    try:
        got = read(body, media_type, token)
    except LedgerError as e:
        return ("refused", type(e).__name__, app.status_of(e), str(e))
    return ("accepted", [(p.draft, p.payload_text, p.where) for p in got])


def body_of(lines: list[str], media_type: str) -> str:
    return "\n".join(lines) + "\n" if media_type == LINES_TYPE else "[" + ",".join(lines) + "]"


def _nth(pattern: str, text: str, n: int) -> re.Match[str] | None:
    found = list(re.finditer(pattern, text))
    return found[n % len(found)] if found else None


def _replace(pattern: str, new: str) -> Any:
    """A mutation: the n-th match of ``pattern`` rewritten to ``new`` (``\\g<0>`` = the match)."""

    def mutate(text: str, n: int) -> str:
        m = _nth(pattern, text, n)
        return text if m is None else text[: m.start()] + m.expand(new) + text[m.end() :]

    return mutate


MUTATIONS = {
    # Numbers the strict parser refuses and jiter reads (as LosslessFloat, or a large int).
    "float": _replace(r'(?<=":)-?\d+(?=[,}])', r"\g<0>.0"),
    "exponent": _replace(r'(?<=":)-?\d+(?=[,}])', r"\g<0>e2"),
    "float for string": _replace(r'(?<=":)"[^"]*"(?=[,}])', "1.5"),
    "large int": _replace(r'(?<=":)-?\d+(?=[,}])', "9007199254740993"),
    "huge int": _replace(r'(?<=":)"[^"]*"(?=[,}])', "18446744073709551616"),
    "int for string": _replace(r'(?<=":)"[^"]*"(?=[,}])', "7"),
    "NaN": _replace(r'(?<=":)-?\d+(?=[,}])', "NaN"),
    # Keys: repeated (plainly, escaped), unknown, assigned by the ledger, missing.
    "duplicate key": _replace(r'\{"', r'{"type":"run.submitted","'),
    "escaped duplicate": _replace(r'\{"', '{"\\\\u0074ype":"x","'),
    "duplicate in payload": _replace(r'"payload":\{"', r'"payload":{"zz":1,"zz":2,"'),
    "unknown field": _replace(r'\{"', r'{"zzz":1,"'),
    "ledger field": _replace(r'\{"', r'{"seq":3,"'),
    "no payload": _replace(r'"payload":', r'"pay_load":'),
    # Strings: lone surrogates, escapes, control characters, non-ASCII.
    "lone surrogate": _replace(r'(?<=":")', "\\\\ud800"),
    "escaped text": _replace(r'(?<=":")', "\\\\u00e9\\\\n"),
    "raw control": _replace(r'(?<=":")', "\x01"),
    "astral": _replace(r'(?<=":")', "\U0001f600"),
    # Shapes: nesting, wrong types, other event types, broken JSON.
    "deep": _replace(r'(?<="payload":)\{', "[" * 70 + "{"),
    # Around the depth limit, which the strict parser counts from the body's root and a
    # payload's encoding from the payload: where the quick way must not judge free-form values.
    **{
        f"deep payload {n}": _replace(r'(?<="payload":\{)', '"deep":' + "[" * n + "]" * n + ",")
        for n in (62, 63, 64, 65, 70)
    },
    "type not string": _replace(r'"type":"[^"]*"', '"type":5'),
    "free-form type": _replace(r'"type":"[^"]*"', '"type":"policy.set"'),
    "unknown type": _replace(r'"type":"[^"]*"', '"type":"no.such"'),
    "agent not string": _replace(r'"agent":"[^"]*"', '"agent":1.5'),
    "truncated": lambda text, n: text[: max(1, len(text) - 1 - n % 40)],
    "trailing": lambda text, n: text + ("x" if n % 2 else "]"),
    "blank lines and CRLF": lambda text, n: text.replace("\n", "\r\n\n"),
    "not an object": _replace(r'\{"', r'[{"'),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(LINES) - 1), min_size=1, max_size=6),
    media_type=st.sampled_from([JSON, LINES_TYPE]),
    mutations=st.lists(
        st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 10_000)), max_size=2
    ),
    token=st.sampled_from([ANY_TOKEN, NARROW_TOKEN]),
)
def test_quick_and_strict_reading_answer_alike(
    picks: list[int], media_type: str, mutations: list[tuple[str, int]], token: Token
) -> None:
    text = body_of([LINES[i] for i in picks], media_type)
    for name, n in mutations:
        text = MUTATIONS[name](text, n)
    body = text.encode("utf-8", "surrogatepass")
    assert outcome(bodies.accepted, body, media_type, token) == outcome(
        strict, body, media_type, token
    )


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_every_mutation_answers_as_the_strict_way(name: str) -> None:
    """Each mutation at several places of bodies of fully typed drafts (the bodies the quick
    way takes) and of free-form ones, one by one, so none is left to chance."""
    cases = [TYPED[n : n + 3] for n in range(0, 60, 7)] + [FREE, FREE[:1]]
    for n, lines in enumerate(cases):
        for media_type in (JSON, LINES_TYPE):
            text = MUTATIONS[name](body_of(lines, media_type), n)
            body = text.encode("utf-8", "surrogatepass")
            assert outcome(bodies.accepted, body, media_type, ANY_TOKEN) == outcome(
                strict, body, media_type, ANY_TOKEN
            ), (name, n, media_type)


def test_typed_drafts_are_read_the_quick_way_and_free_form_ones_are_not() -> None:
    typed = body_of(TYPED[:50], JSON).encode()
    quick = bodies.quick_drafts(typed, JSON)
    assert quick is not None and len(quick) == 50
    assert outcome(bodies.accepted, typed, JSON, ANY_TOKEN)[0] == "accepted"
    assert FREE, "the sample stream holds no free-form draft"
    assert bodies.quick_drafts(body_of([*TYPED[:3], FREE[0]], JSON).encode(), JSON) is None


def test_a_float_in_a_typed_payload_is_refused_with_the_strict_message() -> None:
    """The case the quick way must never let through: jiter reads the number, validation has
    to refuse it, and the answer is the strict parser's 400 naming the field."""
    line = next(x for x in TYPED if re.search(r'":-?\d+[,}]', x))
    body = MUTATIONS["float"](body_of([line], JSON), 0).encode()
    assert bodies.quick_drafts(body, JSON) is not None
    kind, _name, status, message = outcome(bodies.accepted, body, JSON, ANY_TOKEN)
    assert (kind, status[0]) == ("refused", 400)
    assert "float" in message or "not an integer" in message, message


def strict_line(raw: bytes, n: int) -> Draft:
    """What ``import`` answered for a line before it had a quick way."""
    draft = import_lines._draft(raw, n)
    prepare(draft, f"line {n}")
    return draft


def line_outcome(read: Any, raw: bytes, n: int) -> tuple[Any, ...]:
    try:
        return ("accepted", read(raw, n))
    except LedgerError as e:
        return ("refused", type(e).__name__, str(e))


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_import_lines_answer_as_the_strict_way(name: str) -> None:
    for n, line in enumerate([*TYPED[:40:4], *FREE]):
        raw = MUTATIONS[name](line, n).encode("utf-8", "surrogatepass")
        for raw_line in raw.split(b"\n"):  # a mutation may have split the line
            assert line_outcome(import_lines.parse_line, raw_line, n + 1) == line_outcome(
                strict_line, raw_line, n + 1
            ), (name, n)
            # Pass 2 reads the line again: the draft it appends is pass 1's.
            got = line_outcome(import_lines.parse_line, raw_line, n + 1)
            if got[0] == "accepted":
                [again] = import_lines._prepared([raw_line])
                assert again.draft == got[1]


def test_an_import_of_typed_lines_reads_them_the_quick_way() -> None:
    assert all(import_lines._quick_line(x.encode(), "line 1") is not None for x in TYPED[:50])
    assert all(import_lines._quick_line(x.encode(), "line 1") is None for x in FREE)
