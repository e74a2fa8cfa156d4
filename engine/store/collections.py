"""Imports every store module so that their indexes are registered."""

from engine.discovery import submodules

submodules("engine.store", skip=frozenset({"collections"}))
