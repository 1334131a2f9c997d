"""Write ``ledger/event/catalog_schemas.py``: the catalog's payload schemas without pydantic.

::

    python -m scripts.gen_catalog_schemas            # rewrite the module
    python -m scripts.gen_catalog_schemas --check    # exit 1 if it is out of date

Each payload model of ``ledger.event.catalog`` compiles to a pydantic-core schema; this turns
each into a plain literal a reading command can hand to ``pydantic_core.SchemaValidator``
without importing pydantic. A ``model`` becomes a ``typed-dict`` (its config kept: strict,
extra fields forbidden or allowed, its title) behind ``payload_rules.model_input``, which gives
a non-object the model's own ``model_type`` error; the function validators must be functions of
``ledger.event.payload_rules`` and are written as references to them. Metadata, references and
serialization settings are dropped: they do not change a verdict. Anything else the generator
does not know (a schema reused through ``definitions``, a function defined elsewhere) stops it
with an error rather than being guessed at.

``tests/test_catalog_schemas.py`` regenerates the module and compares, and checks that both
validators give the same verdicts and messages.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parent.parent / "ledger" / "event" / "catalog_schemas.py"

HEADER = '''"""The payload schemas of the event catalog as plain pydantic-core schemas (generated).

Written by ``python -m scripts.gen_catalog_schemas`` from the models of ``ledger.event.catalog``:
do not edit; change a model, then regenerate (a test fails until then). ``SCHEMAS`` maps each
catalog type to the schema of its payload (without the ``type`` key) for
``pydantic_core.SchemaValidator``, so reading commands validate payloads, with the same verdicts
and messages as the models, without importing pydantic (``ledger.event.payload_check``).
"""

# fmt: off
from __future__ import annotations

from typing import Any

from ledger.event.payload_rules import model_input, rfc3339_time

'''
KNOWN_KEYS = {
    "model": {"type", "cls", "config", "schema", "custom_init", "root_model", "metadata", "ref"},
    "model-fields": {"type", "fields", "computed_fields", "model_name"},
    "model-field": {
        "type",
        "schema",
        "metadata",
        "serialization_exclude",
        "serialization_alias",
        "validation_alias",
    },
}
"""The keys of a model's schema the generator understands (anything else stops it)."""
CONFIG_KEYS = ("extra_fields_behavior", "strict", "title")
DROPPED = {"metadata", "ref", "serialization"}


class Code:
    """A Python expression written as is into the module (a function reference, a call)."""

    def __init__(self, text: str) -> None:
        self.text = text


def _rule(function: Any) -> Code:
    from ledger.event import payload_rules

    name = getattr(function, "__name__", "")
    if getattr(payload_rules, name, None) is not function:
        raise SystemExit(
            f"gen_catalog_schemas: validator {function!r} is not a function of "
            "ledger.event.payload_rules; move it there so the reading paths can call it"
        )
    return Code(name)


def _unknown(schema: dict[str, Any], kind: str) -> None:
    extra = set(schema) - KNOWN_KEYS[kind]
    if extra:
        raise SystemExit(f"gen_catalog_schemas: {kind} schema with unknown keys {sorted(extra)}")


def light(schema: Any) -> Any:
    """``schema`` (a pydantic-core schema, or a part of one) without pydantic's classes."""
    if isinstance(schema, list):
        return [light(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind in ("definitions", "definition-ref"):
        raise SystemExit("gen_catalog_schemas: a schema with definitions; inline the model")
    if kind == "model":
        _unknown(schema, "model")
        fields_schema = schema["schema"]
        if fields_schema.get("type") != "model-fields" or fields_schema.get("computed_fields"):
            raise SystemExit(f"gen_catalog_schemas: model {schema['cls'].__name__}: not plain")
        _unknown(fields_schema, "model-fields")
        fields: dict[str, Any] = {}
        for name, field in fields_schema["fields"].items():
            _unknown(field, "model-field")
            inner = field["schema"]
            typed: dict[str, Any] = {
                "type": "typed-dict-field",
                "schema": light(inner),
                "required": inner.get("type") != "default",
            }
            if "validation_alias" in field:
                typed["validation_alias"] = field["validation_alias"]
            fields[name] = typed
        config = {k: schema["config"][k] for k in CONFIG_KEYS if k in schema.get("config", {})}
        return {
            "type": "function-before",
            "function": {"type": "no-info", "function": Code(f"model_input({schema['cls'].__name__!r})")},
            "schema": {"type": "typed-dict", "fields": fields, "config": config},
        }  # fmt: skip
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in DROPPED:
            continue
        if key == "function" and isinstance(value, dict) and "function" in value:
            out[key] = {**value, "function": _rule(value["function"])}
        else:
            out[key] = light(value)
    return out


def _inline(value: Any) -> str:
    if isinstance(value, Code):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + "".join(f"{_inline(v)}, " for v in value).rstrip(" ") + ")"
    if value is None or isinstance(value, bool | int | str):
        return repr(value)
    raise SystemExit(f"gen_catalog_schemas: cannot write {value!r} as a literal")


def _literal(value: Any, indent: int, room: int) -> str:
    """``value`` as Python source: on one line when it fits in ``room`` characters, else one
    item a line."""
    inline = _inline(value)
    if len(inline) <= room or not isinstance(value, dict | list | tuple) or not value:
        return inline
    pad = "    " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{k!r}: " for k in value]
        items = [
            f"{head}{_literal(v, indent + 1, 99 - len(head))},"
            for head, v in zip(items, value.values(), strict=True)
        ]
        open_, close = "{", "}"
    else:
        items = [f"{pad}{_literal(v, indent + 1, 99 - len(pad))}," for v in value]
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
    return open_ + "\n" + "\n".join(items) + "\n" + "    " * indent + close


def render() -> str:
    """The module's text (one item a line, under ``# fmt: off``, so ``ruff format`` leaves it)."""
    from ledger.event.catalog import CATALOG, TIME_FIELDS

    schemas: dict[str, Any] = {}
    for event_type, model in CATALOG.items():
        model.model_rebuild()
        schemas[event_type] = light(model.__pydantic_core_schema__)
    body = (
        HEADER
        + f"CATALOG_TYPES: tuple[str, ...] = {_literal(tuple(CATALOG), 0, 60)}\n"
        + '"""Every type of the v1 catalog, in catalog order."""\n\n'
        + f"TIME_FIELDS: dict[str, tuple[str, ...]] = {_literal(TIME_FIELDS, 0, 60)}\n"
        + '"""Event type → its payload\'s time fields (top level), stored in ``ts`` form."""\n\n'
        + f"SCHEMAS: dict[str, dict[str, Any]] = {_literal(schemas, 0, 60)}\n"
        + '"""Event type → the core schema of its payload model, without pydantic."""\n'
    )
    return body


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the module is out of date")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET} is out of date: run python -m scripts.gen_catalog_schemas")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
