"""The fast paths of the folds (docs/projections.md, "Where rebuild time goes")."""

from __future__ import annotations

import pytest

from ledger.errors import LedgerError
from ledger.event.catalog import CATALOG
from ledger.event.envelope import UserPayload, format_ts, normalize_time, parse_time
from projections.reliability import fold as reliability
from projections.runs import fold as runs
from projections.runs.fold import _json_strings
from projections.tiers import fold as tiers


@pytest.mark.parametrize("module", [runs, tiers])
def test_fold_tables_cover_every_payload_class_once(module: object) -> None:
    folds, ignored = module._FOLDS, module.IGNORED  # type: ignore[attr-defined]
    classes = set(CATALOG.values()) | {UserPayload}
    assert set(folds) | ignored == classes
    assert not set(folds) & ignored


def test_reliability_folds_are_the_relevant_types() -> None:
    assert {c.model_fields["type"].default for c in reliability._FOLDS} == reliability.RELEVANT


@pytest.mark.parametrize(
    "value",
    [
        "2030-01-06T08:30:04Z",
        "2030-01-06T08:30:04.123456Z",
        "2030-01-06T08:30:04.5Z",
        "2030-01-06T10:30:04+02:00",
        "2030-01-06",
        "2024-02-29T23:59:59Z",
    ],
)
def test_normalize_time_fast_path_is_the_full_parse(value: str) -> None:
    assert normalize_time(value) == format_ts(parse_time(value))


@pytest.mark.parametrize(
    "value", ["2030-02-30T08:30:04Z", "2030-01-06T24:00:00Z", "2030-01-06T08:30:60Z", "soon"]
)
def test_normalize_time_refuses_what_the_full_parse_refuses(value: str) -> None:
    with pytest.raises(LedgerError) as expected:
        format_ts(parse_time(value))
    with pytest.raises(LedgerError) as got:
        normalize_time(value)
    assert str(got.value) == str(expected.value)


def test_json_strings_does_not_cache_an_error() -> None:
    with pytest.raises(LedgerError):
        _json_strings(("\ud800",))
    with pytest.raises(LedgerError):
        _json_strings(("\ud800",))
    assert _json_strings(("a", "é")) == '["a","é"]'
