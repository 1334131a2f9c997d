"""Import arrows (STYLE.md "Shape and arrows", docs/architecture.md), read with ``ast`` so they
stay honest.

- ``PARTS`` is the whole intended graph: each part of ``ledger`` and ``projections`` and the
  parts it may import. Every import between two parts must be one of these arrows; an arrow
  that breaks the table today is listed in ``KNOWN_EXCEPTIONS`` with the work that removes it.
- No import cycle between modules, package ``__init__`` re-exports included.
- ``chain``, ``merkle``, ``signing``, ``canonical``, ``body`` and ``notes`` take and return
  bytes (no pydantic, no SQL, no click) so an offline verifier can reuse them; only
  ``ledger/cli/`` imports click.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CORE = {"ledger.errors", "ledger.settings", "ledger.event", "ledger.crypto", "ledger.tlog"}
CORE |= {"ledger.store", "ledger.store.base", "ledger.verify", "ledger.exchange"}
READ_MODELS = {
    "projections",
    "projections.projection",
    "projections.registry",
    "projections.driver",
    "projections.current",
    "projections.replay_check",
    "projections.testing",
    "projections.policy_toml",
    "projections.findings",
    "projections.findings.kinds",
    "projections.policy",
    "projections.runs",
    "projections.tiers",
    "projections.corrections",
    "projections.reliability",
}
EVENT_MODEL = {"ledger.errors", "ledger.event", "ledger.store.base"}
"""What a read model may see of the log: the event model and the store-neutral interface."""
APPLICATION = CORE | {"ledger.app"} | READ_MODELS

PARTS: dict[str, set[str]] = {
    # The core: the log, its bytes, keys, tree, store, checks and exchange formats.
    "ledger.errors": set(),
    "ledger.settings": {"ledger.errors"},
    "ledger.event": {"ledger.errors"},
    "ledger.crypto": {"ledger.errors", "ledger.event", "ledger.settings"},
    "ledger.tlog": {"ledger.errors", "ledger.event", "ledger.crypto"},
    "ledger.store.base": {"ledger.errors", "ledger.event", "ledger.crypto", "ledger.tlog"},
    "ledger.store": {"ledger.errors", "ledger.event", "ledger.crypto", "ledger.tlog"}
    | {"ledger.settings", "ledger.store.base"},
    "ledger.verify": {"ledger.errors", "ledger.event", "ledger.crypto", "ledger.tlog"}
    | {"ledger.settings", "ledger.store", "ledger.store.base"},
    "ledger.exchange": {"ledger.errors", "ledger.event", "ledger.crypto", "ledger.tlog"}
    | {"ledger.settings", "ledger.store", "ledger.store.base", "ledger.verify"},
    # The read models: pure folds over the event model. Between them, the arrows point from a
    # read model to what it reads: shared pieces (projection, findings.kinds, policy), then
    # reliability ← runs ← tiers, and the findings query over all of them.
    "projections.projection": EVENT_MODEL,
    "projections.findings.kinds": set(),
    "projections.policy": EVENT_MODEL | {"projections.projection"},
    "projections.policy_toml": EVENT_MODEL | {"projections.policy"},
    "projections.reliability": EVENT_MODEL
    | {"projections.projection", "projections.findings.kinds", "projections.policy"},
    "projections.runs": EVENT_MODEL
    | {"projections.projection", "projections.findings.kinds", "projections.policy"}
    | {"projections.reliability"},
    "projections.tiers": EVENT_MODEL
    | {"projections.projection", "projections.findings.kinds", "projections.policy"}
    | {"projections.runs"},
    "projections.corrections": EVENT_MODEL
    | {"projections.projection", "projections.findings.kinds", "projections.policy"},
    "projections.findings": EVENT_MODEL
    | {"projections.projection", "projections.findings.kinds", "projections.policy"}
    | {"projections.reliability", "projections.runs", "projections.tiers"}
    | {"projections.corrections"},
    "projections.registry": {"projections.projection", "projections.reliability"}
    | {"projections.runs", "projections.tiers", "projections.corrections"},
    # Where the read models stand and whether they are current: the driver's judgment, which
    # reading commands make without the driver (and its payload models).
    "projections.current": EVENT_MODEL | {"projections.projection", "projections.registry"},
    "projections.driver": EVENT_MODEL
    | {"projections.projection", "projections.registry", "projections.current"},
    "projections.replay_check": EVENT_MODEL
    | {"projections.projection", "projections.registry", "projections.driver"}
    | {"projections.current"},
    # The tests' helper folds hand-built events into SQLite scratch tables.
    "projections.testing": EVENT_MODEL | {"projections.driver", "ledger.store"},
    "projections": {"projections.projection", "projections.registry", "projections.driver"},
    # The application: reads the read models and records signed events.
    "ledger.app": CORE | READ_MODELS,
    "ledger.sample": CORE | READ_MODELS | {"ledger.app"},
    # Application-level features, each in its own subpackage (some still to be written).
    "ledger.recording": APPLICATION,
    # The service answers the recording API's gate and lessons as a local recorder does.
    "ledger.service": APPLICATION | {"ledger.recording"},
    "ledger.report": APPLICATION,
    "ledger.adapters": APPLICATION | {"ledger.recording"},
    # The public names (lazily loaded) and the command line.
    "ledger": APPLICATION
    | {"ledger.sample", "ledger.recording", "ledger.service"}
    | {"ledger.report", "ledger.adapters"},
    "ledger.cli": {"ledger"}
    | APPLICATION
    | {"ledger.sample", "ledger.recording"}
    | {"ledger.service", "ledger.report", "ledger.adapters"},
}

KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()
"""``(importer, imported)`` modules whose arrow breaks ``PARTS`` today, each with the work that
removes it. The test fails on any other break, and on a listed one that no longer exists."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    module_name(p): p
    for pkg in ("ledger", "projections")
    for p in sorted((ROOT / pkg).rglob("*.py"))
}


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node``, with whether it sits in an ``if TYPE_CHECKING:`` body."""
    for child in ast.iter_child_nodes(node):
        yield child, typing_only
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, typing_only
                yield from _walk(stmt, typing_only)
        else:
            yield from _walk(child, typing_only)


def resolve(base: str, name: str | None, modules: set[str] | dict[str, Path]) -> str:
    """The module an import reaches: ``from base import name`` is an edge to the submodule
    ``base.name`` when there is one, else to ``base`` itself (a package's ``__init__`` when
    ``base`` is a package); ``import base`` (``name`` None) is an edge to ``base``."""
    if name is not None and f"{base}.{name}" in modules:
        return f"{base}.{name}"
    return base


def edges(path: Path, modules: set[str] | dict[str, Path] = MODULES) -> list[tuple[str, int, bool]]:
    """``(module reached, line, typing only)`` for every import in ``path``, at any depth
    (imports inside functions count: they run too)."""
    out: list[tuple[str, int, bool]] = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node, typing_only in _walk(tree):
        if isinstance(node, ast.Import):
            out += [(resolve(a.name, None, modules), node.lineno, typing_only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                package = path.relative_to(ROOT).with_suffix("").parts[: -node.level]
                base = ".".join(package + ((node.module,) if node.module else ()))
            else:
                base = node.module or ""
            out += [(resolve(base, a.name, modules), node.lineno, typing_only) for a in node.names]
    return out


def part_of(module: str) -> str | None:
    """The part of ``PARTS`` a module belongs to: the longest key that is it or a prefix of it."""
    keys = [k for k in PARTS if module == k or module.startswith(k + ".")]
    return max(keys, key=len) if keys else None


def arrow_breaks() -> dict[tuple[str, str], str]:
    """``(importer, imported)`` → where, for every import between parts that ``PARTS`` does not
    allow."""
    found: dict[tuple[str, str], str] = {}
    for module, path in MODULES.items():
        src = part_of(module)
        for target, line, _ in edges(path):
            if target not in MODULES or src is None:
                continue
            dst = part_of(target)
            if dst != src and dst not in PARTS[src]:
                found.setdefault((module, target), f"{rel(path)}:{line}: {src} → {dst}")
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of ``graph`` that hold a cycle
    (more than one node, or a node importing itself), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def module_graph() -> dict[str, set[str]]:
    """Module → the local modules it imports when it runs (``TYPE_CHECKING`` imports never
    run, so they make no cycle)."""
    return {
        module: {t for t, _, typing_only in edges(path) if t in MODULES and not typing_only}
        for module, path in MODULES.items()
    }


def test_every_module_belongs_to_a_part_of_the_table() -> None:
    assert [m for m in MODULES if part_of(m) is None] == []


def test_the_table_names_only_its_own_parts_and_has_no_cycle() -> None:
    assert {t for targets in PARTS.values() for t in targets} - set(PARTS) == set()
    assert strongly_connected(PARTS) == []


def test_every_import_between_parts_is_an_arrow_of_the_table() -> None:
    unexpected = {k: v for k, v in arrow_breaks().items() if k not in KNOWN_EXCEPTIONS}
    assert unexpected == {}


def test_every_known_exception_still_exists() -> None:
    # A fixed arrow leaves the list, so the list only shrinks.
    assert KNOWN_EXCEPTIONS - set(arrow_breaks()) == set()


def test_no_import_cycle_between_modules() -> None:
    assert strongly_connected(module_graph()) == []


def test_the_cycle_finder_reports_cycles_and_self_imports() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d"]]


def test_a_name_from_a_package_is_an_edge_to_its_init_and_a_submodule_to_the_submodule() -> None:
    modules = {"projections", "projections.findings", "projections.findings.kinds"}
    assert resolve("projections", "register", modules) == "projections"
    assert resolve("projections.findings", "kinds", modules) == "projections.findings.kinds"
    assert resolve("projections.findings.kinds", "Finding", modules) == "projections.findings.kinds"


def test_typing_only_imports_are_told_apart() -> None:
    sample = ROOT / "ledger" / "__init__.py"
    found = {(t, typing_only) for t, _, typing_only in edges(sample)}
    assert ("ledger.store.sqlite", True) in found
    assert ("ledger.store.sqlite", False) not in found


BYTES_MODULES = [
    "event/canonical",
    "event/body",
    "crypto/signing",
    "verify/chain",
    "tlog/merkle",
    "tlog/notes",
    "tlog/cosignatures",
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


@pytest.mark.parametrize("name", BYTES_MODULES)
def test_bytes_modules_import_no_pydantic_sql_or_click(name: str) -> None:
    path = ROOT / "ledger" / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{rel(path)} not written yet")
    assert top(imports(path)) & FORBIDDEN_IN_BYTES == set()


@pytest.mark.parametrize(
    "name",
    [
        "event/canonical",
        "event/body",
        "crypto/signing",
        "tlog/merkle",
        "tlog/notes",
        "tlog/cosignatures",
    ],
)
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
        and not {"cli", "app", "sample", "report", "service", "recording"}
        & set(p.relative_to(ROOT).parts)
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


SQL_DRIVERS = {"sqlite3", "sqlite_utils"}


def test_only_the_sqlite_store_modules_import_sqlite() -> None:
    # Everything else reaches storage through ``ledger.store.base``: a module that needs SQLite
    # says so in its name (ledger/store/sqlite*.py). No exceptions.
    offenders = [
        rel(p)
        for p in sources("ledger", "projections")
        if top(imports(p)) & SQL_DRIVERS and not p.stem.startswith("sqlite")
    ]
    assert offenders == []


def _store_imports(p: Path) -> set[str]:
    return {n for n in imports(p) if n == "ledger.store" or n.startswith("ledger.store.")}


def test_projections_reach_the_store_only_through_its_interface() -> None:
    # projections/testing.py is the one exception: the tests' helper folds hand-built events
    # into SQLite scratch tables (``ledger.store.sqlite_read_models``); the package never
    # imports it.
    allowed = {"ledger.store.base", "ledger.store.base.ReadModels"}
    offenders = {
        rel(p): sorted(_store_imports(p) - allowed)
        for p in sources("projections")
        if _store_imports(p) - allowed and rel(p) != "projections/testing.py"
    }
    assert offenders == {}
    assert not any(
        rel(p) == "projections/testing.py" for p in local_closure(ROOT / "projections/__init__.py")
    )


def test_the_store_interface_loads_no_store() -> None:
    closure = local_closure(ROOT / "ledger/store/base.py")
    assert [rel(p) for p in closure if p.stem.startswith("sqlite")] == []
    assert not any(top(imports(p)) & SQL_DRIVERS for p in closure)


def test_tlog_does_not_import_the_store() -> None:
    # Proofs and the stored-tree check take the store they are handed (protocols of their own).
    offenders = [rel(p) for p in sources("ledger/tlog") if _store_imports(p)]
    assert offenders == []


def test_the_append_path_is_reached_only_through_the_store() -> None:
    # Writes go through ``Store.append``/``append_many``/``write()``: only the stores import
    # the shared write path, and it does not import a store back (no cycle).
    users = [
        rel(p)
        for p in sources("ledger", "projections", "scripts")
        if any(n.startswith("ledger.store.chaining") for n in imports(p))
    ]
    assert users == [
        "ledger/store/postgres.py",
        "ledger/store/sqlite.py",
        "ledger/store/sqlite_chain.py",
    ]
    append = ROOT / "ledger/store/chaining.py"
    assert not any(
        n.startswith(("ledger.store.sqlite", "ledger.store.postgres")) for n in imports(append)
    )
