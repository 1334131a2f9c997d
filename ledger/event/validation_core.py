"""pydantic-core's compiled module, for the reading paths, without its package's Python wrapper.

``import pydantic_core`` runs the package's ``__init__``, which imports ``typing_extensions`` and
``pydantic_core.core_schema`` (type definitions only: about 140 M instructions, a fifth of what
``runs show`` executes). The reading paths need only what the compiled module
``pydantic_core._pydantic_core`` defines (``SchemaValidator``, ``ValidationError``,
``from_json``, the error classes), so this loads that module by its own name, as the package
would, and registers it in ``sys.modules``: a later ``import pydantic_core`` (pydantic, on the
write path) takes the same module, so its classes are these very objects. When pydantic_core is
already imported, or its compiled module is not where the package keeps it, the package is
imported as usual.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING

_NAME = "pydantic_core._pydantic_core"


def _compiled() -> ModuleType:
    loaded = sys.modules.get(_NAME)
    if loaded is not None:
        return loaded
    if "pydantic_core" not in sys.modules:
        from importlib.machinery import PathFinder
        from importlib.util import find_spec, module_from_spec

        package = find_spec("pydantic_core")  # found, not imported
        where = package.submodule_search_locations if package is not None else None
        spec = PathFinder.find_spec(_NAME, where) if where else None
        if spec is not None and spec.loader is not None:
            module = module_from_spec(spec)
            sys.modules[_NAME] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[_NAME]
                raise
            return module
    import pydantic_core._pydantic_core as compiled

    return compiled


if TYPE_CHECKING:
    from pydantic_core import (
        PydanticCustomError,
        PydanticKnownError,
        SchemaValidator,
        ValidationError,
        from_json,
    )
else:
    _core = _compiled()
    PydanticCustomError = _core.PydanticCustomError
    PydanticKnownError = _core.PydanticKnownError
    SchemaValidator = _core.SchemaValidator
    ValidationError = _core.ValidationError
    from_json = _core.from_json

__all__ = [
    "PydanticCustomError",
    "PydanticKnownError",
    "SchemaValidator",
    "ValidationError",
    "from_json",
]
