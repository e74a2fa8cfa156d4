"""Fixtures for the job system tests: fake live workers (heartbeats) for in-process dispatch."""

from __future__ import annotations

import pytest

import tests.integration.jobs.handlers  # noqa: F401 - registers the test job kinds
from engine.limits.service import clear_cache
from engine.store.job_backlog import Backlog


@pytest.fixture(autouse=True)
def _fresh_limits_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def fake_workers(services):
    """fake_workers(n): n queued workers count as alive (heartbeats), so dispatch sends messages."""

    def set_workers(n: int) -> None:
        backlog = Backlog(services.redis)
        services.redis.delete("{jobs}:workers")
        for i in range(n):
            backlog.heartbeat(f"fake-{i}", 600)

    return set_workers
