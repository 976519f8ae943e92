"""Lazy re-exports: a package names its public functions without importing their modules.

``from quakelake.picking import load_model`` works, yet ``import quakelake.picking.weights``
does not load pandas or torch: a package's ``__init__`` lists ``name -> submodule`` and
:func:`lazy_exports` returns the module ``__getattr__`` (PEP 562) that imports the submodule on
first use. Submodules themselves stay importable as before (``from quakelake.picking import
engine``): a name that is also a submodule's is never listed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` resolving ``table``'s names in ``package``'s submodules."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
