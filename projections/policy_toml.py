"""Writing a policy document as TOML, the format ``govledger policy set`` reads (docs/policy.md).

A small exact writer for the shapes a policy has: tables of integers, booleans, strings and
arrays of those. ``tomllib.loads(dump_toml(doc)) == doc`` for every such document, so the
written file records the same digest as the document it came from.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ledger.errors import PolicyError

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _string(s: str) -> str:
    # A JSON string is a TOML basic string once DEL (allowed raw in JSON) is escaped too.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else _string(k)


def _value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x, f"{where}[{i}]") for i, x in enumerate(v)) + "]"
    raise PolicyError(
        f"{where}: cannot write {type(v).__name__} as policy TOML "
        "(expected an integer, boolean, string, array or table)"
    )


def _table(doc: dict[str, Any], path: list[str], out: list[str]) -> None:
    scalars = [(k, v) for k, v in doc.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in doc.items() if isinstance(v, dict)]
    where = ".".join(path) or "policy"
    if path and (scalars or not tables):
        out.append(f"\n[{'.'.join(_key(p) for p in path)}]")
    for k, v in scalars:
        out.append(f"{_key(k)} = {_value(v, f'{where}.{k}')}")
    for k, v in tables:
        _table(v, [*path, k], out)


def dump_toml(document: dict[str, Any]) -> str:
    """``document`` as TOML text: top-level keys first, then one ``[table]`` per nested table."""
    out: list[str] = []
    _table(document, [], out)
    return "\n".join(out).lstrip("\n") + "\n"
