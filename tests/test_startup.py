"""What a reading command loads: the built-in projections are declared without their folds.

``catch_up`` judges whether the stored read models are current from the declarations of
``projections.registry`` (name, version, table names, links), so a reading command whose read
models are current imports no fold module, no policy model and no ``cryptography``; the
declarations must therefore agree with the projections themselves. Nor does it import pydantic:
``projections.current`` makes ``catch_up``'s judgment without the driver, and payloads are
checked with the schemas of ``ledger.event.catalog_schemas`` (``tests/test_catalog_schemas.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from ledger.store.sqlite import Draft, Ledger
from projections.current import read_models_current
from projections.driver import catch_up
from projections.registry import Declared, declared_projections, default_projections
from tests.conftest import LedgerKeys, populate

HEAVY = ("cryptography", "sqlite_utils", "projections.policy.document")


def test_the_declarations_agree_with_the_projections() -> None:
    declared = list(declared_projections())
    real = default_projections()
    assert [d.name for d in declared] == [p.name for p in real]
    for d, p in zip(declared, real, strict=True):
        assert d.version == p.version, f"{p.name}: bump the version in projections.registry too"
        assert d.table_names == tuple(t.name for t in p.tables), p.name
        assert (d.depends_on, d.consults) == (tuple(p.depends_on), tuple(p.consults)), p.name
        assert d == Declared.of(p)


def test_every_table_belongs_to_one_projection() -> None:
    names = [t for d in declared_projections() for t in d.table_names]
    assert len(names) == len(set(names))


def _run(code: str) -> list[str]:
    """The modules loaded by ``code`` in a fresh interpreter that also prints its own output."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loaded: list[str] = json.loads(out.splitlines()[-1])
    return loaded


def _folds(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m.endswith(".fold") or m.startswith(HEAVY)]


def _pydantic(loaded: list[str]) -> list[str]:
    """pydantic and the modules that import it (``pydantic_core`` alone is light)."""
    heavy = ("pydantic.", "projections.driver", "ledger.event.catalog")
    return [m for m in loaded if m in ("pydantic", *heavy) or m.startswith(heavy[0])]


CATCH_UP = (
    "import json\n"
    "from ledger.store.sqlite import Ledger\n"
    "from projections.driver import catch_up\n"
    "lg = Ledger.open({path!r})\n"
    "print(json.dumps([[p.name, p.from_seq, p.to_seq] for p in catch_up(lg, lg.read_models())]))\n"
)


def test_catch_up_imports_the_folds_only_when_there_is_something_to_fold(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    populate(ledger, keys)
    catch_up(ledger, ledger.read_models())
    code = CATCH_UP.format(path=str(ledger.path))
    assert _folds(_run(code)) == []
    ledger.append(Draft("run.started", {}, agent="planner-1", run="run-late"), signer=keys.recorder)
    loaded = _run(code)
    assert "projections.runs.fold" in loaded and "projections.tiers.fold" in loaded
    # And it folded: a second look finds nothing new again.
    assert _folds(_run(code)) == []
    assert {p.to_seq for p in catch_up(ledger, ledger.read_models())} == {ledger.size}


def test_a_stale_read_model_is_rebuilt_with_the_folds(ledger: Ledger, keys: LedgerKeys) -> None:
    populate(ledger, keys)
    db = ledger.read_models()
    catch_up(ledger, db)
    with db.transaction():
        db.execute("UPDATE projection_meta SET version = 0 WHERE name = 'tiers'")
    (tiers,) = [p for p in catch_up(ledger, db) if p.name == "tiers"]
    assert tiers.rebuilt == "version changed from 0 to 4"
    assert tiers.to_seq == ledger.size


MAIN = (
    "import json\n"
    "from ledger.cli import main\n"
    "try:\n    main({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
)


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "list", "--limit", "20"],
        ["findings", "--limit", "20"],
        ["runs", "show", "run-0"],
        ["runs", "show", "run-0", "--json"],
        ["log", "--limit", "20"],
    ],
    ids=["runs list", "findings", "runs show", "runs show --json", "log"],
)
def test_a_reading_command_on_current_read_models_loads_no_fold_nor_pydantic(
    ledger: Ledger, keys: LedgerKeys, args: list[str]
) -> None:
    populate(ledger, keys)
    catch_up(ledger, ledger.read_models())
    loaded = _run(MAIN.format(args=["--db", str(ledger.path), *args]))
    assert _folds(loaded) == []
    assert _pydantic(loaded) == []


def _nothing_to_do(progress: list[Any], size: int) -> bool:
    return all(p.rebuilt is None and p.from_seq == p.to_seq == size for p in progress)


def test_the_light_judgment_of_current_read_models_is_catch_ups(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    db = ledger.read_models()
    assert not read_models_current(ledger, db)  # never built
    populate(ledger, keys)
    catch_up(ledger, db)
    assert read_models_current(ledger, db)
    assert _nothing_to_do(catch_up(ledger, db), ledger.size)

    def agrees() -> None:
        current = read_models_current(ledger, db)
        assert current == _nothing_to_do(catch_up(ledger, db), ledger.size)
        assert not current
        assert read_models_current(ledger, db)  # catch_up brought them up to date

    ledger.append(Draft("run.started", {}, agent="planner-1", run="run-late"), signer=keys.recorder)
    agrees()  # behind
    with db.transaction():
        db.execute("UPDATE projection_meta SET version = 0 WHERE name = 'corrections'")
    agrees()  # a version changed
    with db.transaction():
        db.execute("UPDATE projection_meta SET last_hash = ? WHERE name = 'tiers'", ["0" * 64])
    agrees()  # the log no longer holds the hash
    with db.transaction():
        db.execute("DROP TABLE tier_clock")
    agrees()  # a table is missing
    with db.transaction():
        db.execute("DELETE FROM projection_meta WHERE name = 'runs'")
    agrees()  # a projection was never built


def test_runs_show_still_verifies_its_events_without_the_folds(
    ledger: Ledger, keys: LedgerKeys
) -> None:
    populate(ledger, keys)
    catch_up(ledger, ledger.read_models())
    code = MAIN.format(args=["--db", str(ledger.path), "runs", "show", "run-0", "--json"])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    shown = json.loads(out)
    assert shown["verified"] is True and shown["problems"] == []
    assert len(shown["timeline"]) == shown["events"] > 0
