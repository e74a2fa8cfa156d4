"""The orchestrator's duties: periodic functions run by the active replica only.

A duty is `fn(services, now) -> object` registered with `@duty(name, every_seconds)`. Modules
of the `beat` package define them; `all_duties()` imports the package and returns them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from engine.services import Services

DutyFunction = Callable[[Services, datetime], object]


@dataclass(frozen=True)
class Duty:
    """A periodic duty of the orchestrator."""

    name: str
    every_seconds: float
    run: DutyFunction


_DUTIES: dict[str, Duty] = {}


def duty(name: str, *, every_seconds: float) -> Callable[[DutyFunction], DutyFunction]:
    """Register fn as a duty run every `every_seconds` by the active orchestrator."""

    def register(fn: DutyFunction) -> DutyFunction:
        _DUTIES[name] = Duty(name, every_seconds, fn)
        return fn

    return register


def all_duties() -> list[Duty]:
    """Every registered duty (importing the beat package's modules registers them)."""
    from engine.discovery import submodules

    submodules("beat", skip=frozenset({"duties", "orchestrator", "scheduler", "leader"}))
    return sorted(_DUTIES.values(), key=lambda d: d.name)
