"""Find the modules of a package, so each new resource registers itself without a central list."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def submodules(package: str, *, skip: frozenset[str] = frozenset()) -> list[ModuleType]:
    """Import and return every direct submodule of package (sorted by name), except those in skip."""
    root = importlib.import_module(package)
    names = sorted(info.name for info in pkgutil.iter_modules(root.__path__) if info.name not in skip)
    return [importlib.import_module(f"{package}.{name}") for name in names]
