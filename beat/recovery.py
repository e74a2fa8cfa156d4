"""Recovery duty: Redis is only a cache, so the active orchestrator keeps MongoDB's word true.

Each pass returns expired-lease jobs to the queue (or fails them after their last attempt),
re-sends every job MongoDB says is queued whose message is gone (engine/jobs/reconcile.py),
re-sends action runs whose message is gone, and queues external events stored but never queued.
It runs here, in the orchestrator, rather than as a Celery task: a recovery pass must not wait
in the very queue it repairs.
"""

from __future__ import annotations

import logging
from datetime import datetime

from beat.duties import duty
from engine.services import Services

log = logging.getLogger(__name__)

RECOVERY_INTERVAL_SECONDS = 5.0
"""How often lost or expired work is looked for; a FLUSHALL is repaired within about this."""


@duty("recovery", every_seconds=RECOVERY_INTERVAL_SECONDS)
def recover(services: Services, now: datetime):
    """One pass: the job system, action runs whose message is gone, events never queued."""
    from engine.domain.action_runs import requeue_stale_runs
    from engine.flows.events import requeue_pending_events
    from engine.jobs.reconcile import reconcile

    report = reconcile(services, now)
    action_runs = requeue_stale_runs(services)
    events = requeue_pending_events(services)
    if action_runs or events:
        log.info("recovery re-sent %d action runs and queued %d stored events", action_runs, events)
    return report
