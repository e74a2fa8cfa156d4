"""The orchestrator's loop, as one-iteration `tick(now)`, and the Celery beat scheduler running it.

`Orchestrator.tick(now)` holds the leader lease and, when active, runs each duty that is due.
`EngineScheduler` is Celery beat's scheduler: beat calls its `tick()` in a loop, and the time
it returns is how long beat sleeps. Static beat entries are none: every duty reads MongoDB, so
new and changed schedules take effect without a restart.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime

from celery.beat import Scheduler

from beat.duties import Duty, all_duties
from beat.leader import LEASE_COLLECTION, LeaderLease, Lease
from engine.services import Services

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
"""How often the active orchestrator looks for due duties."""
STANDBY_TICK_SECONDS = 2.0
"""How often a standby replica tries to take the lease."""


class Orchestrator:
    """Runs the duties while this replica holds the lease."""

    def __init__(
        self,
        services: Services,
        *,
        owner: str | None = None,
        duties: list[Duty] | None = None,
        lease: LeaderLease | None = None,
    ):
        self.services = services
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}"
        self.duties = all_duties() if duties is None else duties
        self.lease = lease or LeaderLease(services.db[LEASE_COLLECTION], self.owner)
        self.last_run: dict[str, float] = {}
        self.current: Lease | None = None

    @property
    def is_active(self) -> bool:
        return self.current is not None

    def tick(self, now: datetime | None = None, *, monotonic: Callable[[], float] = time.monotonic) -> float:
        """One iteration: hold the lease, run due duties. Returns seconds until the next tick."""
        try:
            lease = self.lease.hold()
        except Exception as error:  # noqa: BLE001 - MongoDB down: stand by and retry
            log.warning("orchestrator: cannot reach the lease (%s); standing by", error)
            self.current = None
            return STANDBY_TICK_SECONDS
        if lease != self.current:
            if lease:
                log.info("orchestrator %s is now active (fencing %d)", self.owner, lease.fencing)
            else:
                log.info("orchestrator %s is standing by", self.owner)
        self.current = lease
        if lease is None:
            return STANDBY_TICK_SECONDS
        now = now or datetime.now(UTC)
        clock = monotonic()
        for duty in self.duties:
            last = self.last_run.get(duty.name)
            if last is not None and clock - last < duty.every_seconds:
                continue
            self.last_run[duty.name] = clock
            try:
                duty.run(self.services, now)
            except Exception:  # noqa: BLE001 - one failing duty must not stop the others
                log.exception("orchestrator duty %s failed", duty.name)
        return TICK_SECONDS

    def stop(self) -> None:
        """Release the lease so a standby takes over at once."""
        if self.current is not None:
            try:
                self.lease.release()
            except Exception:  # noqa: BLE001
                log.warning("orchestrator: could not release the lease")
            self.current = None


class EngineScheduler(Scheduler):
    """Celery beat's scheduler running the Orchestrator; beat persists nothing (no shelve file)."""

    sync_every = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # run_orchestrator builds the Orchestrator (its health endpoint reads it); beat only drives it.
        orchestrator = getattr(self.app, "engine_orchestrator", None)
        if orchestrator is None:
            from tasks.runtime import services

            orchestrator = Orchestrator(services())
        self.orchestrator = orchestrator

    def setup_schedule(self) -> None:
        self.merge_inplace({})

    def tick(self, *args, **kwargs) -> float:
        return self.orchestrator.tick()

    def close(self) -> None:
        self.orchestrator.stop()
        super().close()
