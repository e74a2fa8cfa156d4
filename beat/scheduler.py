"""The orchestrator's beat scheduler: the schedule lives in memory here, its truth in MongoDB."""

from __future__ import annotations

from celery.beat import Scheduler


class EngineScheduler(Scheduler):
    """A non-persistent scheduler: beat keeps no shelve file; engine state lives in MongoDB."""

    sync_every = 0
