"""Import arrows (STYLE.md "Shape and arrows"), read with ``ast`` so they stay honest:
``chain``, ``merkle``, ``signing``, ``encoding`` and ``checkpoint`` take and return bytes (no
pydantic, no SQL, no click) so an offline verifier can reuse them; only ``ledger/cli/`` imports
click; projections never import the CLI, and the log never imports projections."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BYTES_MODULES = [
    "event/canonical",
    "crypto/signing",
    "verify/chain",
    "tlog/merkle",
    "tlog/notes",
]
FORBIDDEN_IN_BYTES = {"pydantic", "sqlite3", "sqlite_utils", "click"}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names), at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join(package + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (
        ROOT.joinpath(*parts).with_suffix(".py"),
        ROOT.joinpath(*parts, "__init__.py"),
    ):
        if candidate.is_file():
            return candidate
    return None


def local_closure(path: Path) -> set[Path]:
    """``path`` and every ``ledger``/``projections`` module it imports, transitively."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for name in imports(p):
            if top({name}) & {"ledger", "projections"}:
                target = module_file(name)
                if target is not None:
                    todo.append(target)
    return seen


def sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("name", BYTES_MODULES)
def test_bytes_modules_import_no_pydantic_sql_or_click(name: str) -> None:
    path = ROOT / "ledger" / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{rel(path)} not written yet")
    assert top(imports(path)) & FORBIDDEN_IN_BYTES == set()


@pytest.mark.parametrize("name", ["event/canonical", "crypto/signing", "tlog/merkle", "tlog/notes"])
def test_offline_verifier_modules_pull_none_in_indirectly(name: str) -> None:
    # chain.py is the one exception: it uses ledger.event.envelope for the §2.5 authorization table,
    # and events is built on pydantic. The rule for chain is the direct one above.
    path = ROOT / "ledger" / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{rel(path)} not written yet")
    offenders = {
        rel(p): sorted(top(imports(p)) & FORBIDDEN_IN_BYTES)
        for p in local_closure(path)
        if top(imports(p)) & FORBIDDEN_IN_BYTES
    }
    assert offenders == {}


def test_only_the_cli_imports_click() -> None:
    offenders = [
        rel(p)
        for p in sources("ledger", "projections")
        if "click" in top(imports(p)) and "cli" not in p.relative_to(ROOT).parts
    ]
    assert offenders == []


def test_projections_do_not_import_the_cli() -> None:
    offenders = [
        rel(p)
        for p in sources("projections")
        if any(n == "ledger.cli" or n.startswith("ledger.cli.") for n in imports(p))
    ]
    assert offenders == []


def test_the_log_does_not_import_projections() -> None:
    offenders = [
        rel(p)
        for p in sources("ledger")
        if "projections" in top(imports(p))
        and not {"cli", "app", "sample", "recording"} & set(p.relative_to(ROOT).parts)
    ]
    assert offenders == []


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    # Lazy imports (inside a function) count too: a check that missed them would prove nothing.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "def f():\n"
        "    import click\n"
        "    if True:\n"
        "        from sqlite_utils.db import Database\n",
        encoding="utf-8",
    )
    assert top(imports(sample)) == {"os", "click", "sqlite_utils"}
    assert "sqlite_utils.db.Database" in imports(sample)
