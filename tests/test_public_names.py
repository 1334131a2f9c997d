"""The public names of ``ledger`` and ``projections``: each resolves, and importing a package
stays cheap (nothing loaded, nothing registered, until a name is used)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ledger
import projections
from ledger.errors import LedgerError


@pytest.mark.parametrize("package", [ledger, projections], ids=["ledger", "projections"])
def test_every_public_name_resolves_to_its_defining_module(package: object) -> None:
    names: list[str] = package.__all__  # type: ignore[attr-defined]
    where: dict[str, str] = package._WHERE  # type: ignore[attr-defined]
    assert sorted(names) == sorted(where)
    for name in names:
        value = getattr(package, name)
        assert getattr(sys.modules[where[name]], name) is value, name


def test_every_error_class_is_a_public_name_of_ledger() -> None:
    import ledger.errors as errors

    classes = {
        n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, LedgerError)
    }
    assert classes <= set(ledger.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'ledger' has no attribute 'Nope'"):
        ledger.Nope  # noqa: B018
    with pytest.raises(AttributeError, match="module 'projections' has no attribute 'Nope'"):
        projections.Nope  # noqa: B018


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_importing_one_part_of_ledger_does_not_import_the_store() -> None:
    loaded = _loaded_after("import ledger.event.envelope")
    assert "ledger.event.envelope" in loaded
    assert not {
        m for m in loaded if m.startswith(("ledger.store", "ledger.verify", "sqlite_utils"))
    }


def test_importing_projections_registers_and_folds_nothing() -> None:
    loaded = _loaded_after("import projections.findings.kinds")
    assert "projections.findings.kinds" in loaded
    assert not {m for m in loaded if m.endswith(".fold") or m == "projections.registry"}


def test_default_projections_are_in_fold_order_with_dependencies_first() -> None:
    order = [p.name for p in projections.default_projections()]
    assert order[:4] == ["reliability", "runs", "tiers", "corrections"]
    for i, p in enumerate(projections.default_projections()):
        assert set(p.depends_on) <= set(order[:i]), p.name


def test_register_refuses_a_projection_whose_dependency_is_not_there() -> None:
    from projections.corrections.fold import CorrectionsProjection

    class Orphan(CorrectionsProjection):
        name = "orphan"
        depends_on = ("nowhere",)

    with pytest.raises(ValueError, match="'orphan' depends on 'nowhere', which is not registered"):
        projections.register(Orphan())
    assert "orphan" not in [p.name for p in projections.default_projections()]
