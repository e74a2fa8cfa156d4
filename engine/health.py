"""Health: is each dependency of this process reachable, answered quickly and cached briefly."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pymongo

from engine import __version__
from engine.services import Services

DEPENDENCY_TIMEOUT_SECONDS = 2.0
"""A dependency that does not answer a ping within this is reported down."""
HEALTH_CACHE_SECONDS = 1.0
"""Probes within this window reuse the last answer, so a busy prober cannot load the stores."""


@dataclass(frozen=True)
class HealthReport:
    """The answer to GET /: 200 when every needed dependency is up, else 503."""

    mode: str
    checks: dict[str, bool] = field(default_factory=dict)
    details: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    def to_document(self) -> dict:
        return {
            "status": "ok" if self.ok else "unavailable",
            "mode": self.mode,
            "version": __version__,
            **{name: ("up" if up else "down") for name, up in self.checks.items()},
            **self.details,
        }


def ping_mongo(services: Services) -> bool:
    """True when MongoDB answers a ping within DEPENDENCY_TIMEOUT_SECONDS."""
    try:
        with pymongo.timeout(DEPENDENCY_TIMEOUT_SECONDS):
            services.mongo.admin.command("ping")
        return True
    except Exception:  # noqa: BLE001 - a health check reports, it does not raise
        return False


def ping_redis(services: Services) -> bool:
    """True when Redis answers a ping."""
    try:
        return bool(services.redis.ping())
    except Exception:  # noqa: BLE001
        return False


class HealthChecker:
    """Checks the dependencies of one process mode, caching the answer for HEALTH_CACHE_SECONDS."""

    def __init__(
        self,
        services: Services,
        mode: str,
        *,
        details: Callable[[], dict[str, object]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.services = services
        self.mode = mode
        self.details = details or dict
        self.clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, HealthReport] | None = None

    def report(self) -> HealthReport:
        """The current report (fresh at most HEALTH_CACHE_SECONDS ago)."""
        with self._lock:
            now = self.clock()
            if self._last and now - self._last[0] < HEALTH_CACHE_SECONDS:
                return self._last[1]
            report = HealthReport(
                mode=self.mode,
                checks={"mongodb": ping_mongo(self.services), "redis": ping_redis(self.services)},
                details=self.details(),
            )
            self._last = (now, report)
            return report
