"""The catalog's schemas without pydantic (``ledger.event.catalog_schemas``) are the models'
own: regenerated they are the file as committed, and on any payload both validators give the
same verdict, the same errors (type, location, message, input) and the same message to users."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import SchemaValidator, ValidationError

from ledger.errors import LedgerError
from ledger.event.catalog import CATALOG, TIME_FIELDS, payload_validator
from ledger.event.catalog_schemas import CATALOG_TYPES, SCHEMAS
from ledger.event.catalog_schemas import TIME_FIELDS as LIGHT_TIME_FIELDS
from ledger.event.envelope import check_payload, decode_payload
from ledger.event.payload_check import payload_checker
from ledger.sample import generate_drafts
from scripts.gen_catalog_schemas import TARGET, render


def test_the_generated_module_is_up_to_date() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), (
        "ledger/event/catalog_schemas.py is out of date: run python -m scripts.gen_catalog_schemas"
    )


def test_it_names_every_catalog_type_and_time_field() -> None:
    assert CATALOG_TYPES == tuple(CATALOG) == tuple(SCHEMAS)
    assert LIGHT_TIME_FIELDS == TIME_FIELDS


TIMES = [
    "2026-01-02T03:04:05.123456Z",
    "2026-01-02T03:04:05Z",
    "2026-01-02t03:04:05+01:00",
    "2026-01-02T03:04:05",
    "2026-01-02 03:04:05Z",
    "2026-02-30T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "yesterday",
]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 10_002),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _good(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values ``schema`` (a light schema) mostly accepts, near its bounds."""
    kind = schema["type"]
    if kind == "function-before":  # a nested model
        return _values(schema["schema"])
    if kind == "function-after":  # the RFC 3339 time check
        return st.sampled_from(TIMES)
    if kind in ("default", "nullable"):
        inner = _values(schema["schema"])
        return st.one_of(st.none(), inner) if kind == "nullable" else inner
    if kind == "typed-dict":
        fields = {
            name: st.one_of(st.just(_MISSING), _values(f["schema"]))
            if not f["required"]
            else _values(f["schema"])
            for name, f in schema["fields"].items()
            if name != "type"
        }
        keys = {name: f.get("validation_alias", name) for name, f in schema["fields"].items()}
        return st.fixed_dictionaries(fields).map(
            lambda d: {keys[k]: v for k, v in d.items() if v is not _MISSING}
        )
    if kind == "str":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        low, high = schema.get("min_length", 0), schema.get("max_length", 8)
        return st.one_of(st.text(min_size=low, max_size=min(high, 8)), st.just("a" * high))
    if kind == "int":
        return st.integers(schema.get("ge", -5) - 1, schema.get("le", schema.get("ge", 0) + 10) + 1)
    if kind == "bool":
        return st.booleans()
    if kind == "literal":
        return st.sampled_from(schema["expected"])
    if kind == "list":
        return st.lists(_values(schema["items_schema"]), max_size=3)
    if kind == "dict":
        return st.dictionaries(st.text(max_size=3), JUNK, max_size=2)
    if kind == "any":
        return JUNK
    raise AssertionError(f"a schema of type {kind} is new here: add it")


_MISSING = object()


def _mostly(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` three times in four, else junk (a ``flatmap``: its repr stays short)."""
    return st.integers(0, 3).flatmap(lambda i: good if i else JUNK)


def _values(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _mostly(_good(schema))


def _payloads(event_type: str) -> st.SearchStrategy[Any]:
    """Payloads of ``event_type``: mostly near-valid, with missing fields, wrong types, out of
    range values, a bad time, an extra or aliased key, and now and then no object at all."""
    schema = SCHEMAS[event_type]
    extra = st.dictionaries(
        st.sampled_from(["extra", "from_", "from", "evidence"]), JUNK, max_size=1
    )
    return _mostly(st.tuples(_good(schema["schema"]), extra).map(lambda t: {**t[1], **t[0]}))


def _outcome(validator: SchemaValidator, payload: Any) -> list[tuple[Any, ...]] | None:
    try:
        validator.validate_python(payload)
    except ValidationError as e:
        return [(x["type"], x["loc"], x["msg"], x["input"], x.get("ctx")) for x in e.errors()]
    return None


def _message(check: Any, event_type: str, payload: Any) -> str | None:
    try:
        check(event_type, payload, "seq 7")
    except LedgerError as e:
        return e.message
    return None


@pytest.mark.parametrize("event_type", CATALOG_TYPES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_both_validators_give_the_same_verdict_and_errors(event_type: str, data: Any) -> None:
    payload = data.draw(_payloads(event_type))
    model, light = payload_validator(event_type), payload_checker(event_type)
    assert model is not None and light is not None
    assert _outcome(light, payload) == _outcome(model, payload)
    assert _message(check_payload, event_type, payload) == _message(
        decode_payload, event_type, payload
    )


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        ("run.started", {"type": "run.started"}),
        ("run.started", []),
        ("run.starte", {}),
        ("x.mine", {"anything": [1, 2]}),
        ("x.Bad", {}),
        (7, {}),
        ("run.planned", {"steps": [1, {"tool": ""}], "risk": "none", "required_tier": 5}),
    ],
)
def test_what_is_refused_before_the_fields_is_refused_alike(event_type: Any, payload: Any) -> None:
    assert _message(check_payload, event_type, payload) == _message(
        decode_payload, event_type, payload
    )


def test_the_sample_workload_passes_both() -> None:
    seen = set()
    for _, draft in generate_drafts(3000, 5, 1, violations=3.0):
        seen.add(draft.type)
        check_payload(draft.type, draft.payload)
        decode_payload(draft.type, draft.payload)
    assert len(seen) > 15


def test_a_nested_object_that_is_not_one_is_named_as_the_model_names_it() -> None:
    payload = {"steps": [3], "risk": "low", "required_tier": 1}
    message = _message(check_payload, "run.planned", payload)
    assert message == (
        "seq 7: payload.steps.0: Input should be a valid dictionary or instance of PlannedStep"
    )
    assert message == _message(decode_payload, "run.planned", payload)
