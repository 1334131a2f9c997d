"""`policy show` prints TOML that `policy set` reads back to the same digest; the TOML writer."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from ledger.errors import PolicyError
from projections.policy.document import default_document, digest_of
from projections.policy_toml import dump_toml
from tests.conftest import Cli


def test_policy_show_prints_toml_headed_by_version_digest_and_seq(ready: Cli) -> None:
    text = ready("policy", "show").stdout
    lines = text.splitlines()
    assert lines[0] == "# govledger policy version 0 (shipped default), in force at seq 2"
    assert lines[1] == f"# digest {digest_of(default_document())}"
    assert tomllib.loads(text) == default_document()


def test_policy_show_then_set_records_the_same_digest(ready: Cli) -> None:
    shown = ready.json("policy", "show")
    path = ready.tmp / "p.toml"
    path.write_text(ready("policy", "show").stdout, encoding="utf-8")
    recorded = ready.json("policy", "set", str(path), "--signer", "root")
    assert recorded["version"] == 1
    assert recorded["digest"] == shown["digest"]
    text = ready("policy", "show").stdout
    assert text.splitlines()[0] == (
        f"# govledger policy version 1 (took force at seq {recorded['seq']}), "
        f"in force at seq {recorded['seq']}"
    )


def test_policy_show_json_keeps_the_object(ready: Cli) -> None:
    shown = ready.json("policy", "show")
    assert set(shown) == {"version", "digest", "seq", "document"}
    assert shown["document"] == default_document()


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"a": 1, "b": True, "c": False, "d": -7, "e": 2**62},
        {"s": 'quote " backslash \\ tab \t newline \n nul \x00 del \x7f é 𝄞'},
        {"list": [], "ints": [1, 2, 3], "strs": ["x", "y"], "nested": [[1], ["a"]]},
        {"a": {"b": {"c": 1}}, "z": 0},
        {"empty": {}, "t": {"x": 1, "u": {"y": 2}}},
        {"key with space": 1, "ключ": {"dotted.key": "v"}, "": 3},
    ],
    ids=[
        "empty",
        "scalars",
        "escapes",
        "arrays",
        "nested-after-scalar",
        "empty-table",
        "quoted-keys",
    ],
)
def test_dump_toml_round_trips(document: dict[str, Any]) -> None:
    assert tomllib.loads(dump_toml(document)) == document


def test_dump_toml_round_trips_the_default_policy() -> None:
    assert tomllib.loads(dump_toml(default_document())) == default_document()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"x": 1.5}, "policy.x: cannot write float as policy TOML"),
        ({"t": {"y": [{"a": 1}]}}, "t.y[0]: cannot write dict as policy TOML"),
        ({"n": None}, "policy.n: cannot write NoneType as policy TOML"),
    ],
    ids=["float", "array-of-tables", "null"],
)
def test_dump_toml_names_a_value_it_cannot_write(document: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as e:
        dump_toml(document)
    assert e.value.message.startswith(message)
