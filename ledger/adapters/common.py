"""What the adapters share: the side effect of an unclassified tool, and results as JSON."""

from __future__ import annotations

import json
from typing import Any, Final

DEFAULT_SIDE_EFFECT: Final = "execute"
"""The side effect of a tool an adapter's ``side_effects`` does not name: the strictest common
class, so an unclassified tool runs only for an agent whose contract allows ``execute``."""


def jsonable(value: object) -> Any:
    """``value`` as JSON for its digest: as is when it is JSON (a pydantic model dumped),
    else its text."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value
