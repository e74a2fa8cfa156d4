"""Recovery (domain.md §10): Redis is a cache; MongoDB says what must still happen.

`reconcile(services, now)` - run every few seconds by the active orchestrator (or the
`queued.reconcile` task) - does, in order:

1. jobs whose lease expired (their worker died: SIGKILL, OOM) go back to queued, counting the
   attempt; past maxAttempts they fail with type `worker_lost`;
2. jobs dispatched more than REDISPATCH_AFTER_SECONDS ago and still not claimed get their
   message sent again (same token: if the old message survives, only one of them claims);
3. slot holders whose job no longer holds that dispatch are released (a crashed dispatcher or
   worker between two writes);
4. the Redis lanes are rebuilt from MongoDB if they were lost;
5. dispatch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from engine.jobs import dispatch as dispatcher
from engine.jobs.channel import send_execute
from engine.jobs.model import JobState
from engine.services import Services
from engine.store import jobs as store
from engine.store.job_backlog import Backlog

log = logging.getLogger(__name__)

REDISPATCH_AFTER_SECONDS = 15.0
"""A dispatched job not claimed after this is re-sent (its message was lost with Redis)."""
STALE_HOLDER_SECONDS = 30.0
"""A slot holder whose job does not know it is dropped only after this (a dispatch in progress)."""


@dataclass
class ReconcileReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    released_holders: int = 0
    rebuilt: bool = False
    dispatched: int = 0


def _requeue_expired(services: Services, now: datetime, report: ReconcileReport) -> None:
    expired = store.in_state(services.db, JobState.RUNNING.value, extra={"leaseExpiresAt": {"$lt": now}})
    backlog = Backlog(services.redis)
    for document in expired:
        condition = {"state": JobState.RUNNING.value, "leaseExpiresAt": document["leaseExpiresAt"]}
        attempts, maximum = document.get("attempts", 0), document.get("maxAttempts", 3)
        if document.get("stopRequested"):
            # Its worker died while it was being stopped: it is stopped.
            if store.update_if(
                services.db,
                document["_id"],
                condition,
                {
                    "$set": {
                        "state": JobState.STOPPED.value,
                        "finishedAt": now,
                        "leaseOwner": None,
                        "leaseExpiresAt": None,
                    }
                },
            ):
                dispatcher.release(services, document)
            continue
        if attempts >= maximum:
            if store.update_if(
                services.db,
                document["_id"],
                condition,
                {
                    "$set": {
                        "state": JobState.FAILED.value,
                        "finishedAt": now,
                        "leaseOwner": None,
                        "leaseExpiresAt": None,
                        "error": {
                            "type": "worker_lost",
                            "message": f"the worker running this job stopped responding "
                            f"{attempts} times (maxAttempts {maximum})",
                        },
                    }
                },
            ):
                dispatcher.release(services, document)
                report.failed.append(document["_id"])
            continue
        if store.update_if(
            services.db,
            document["_id"],
            condition,
            {
                "$set": {
                    "state": JobState.QUEUED.value,
                    "leaseOwner": None,
                    "leaseExpiresAt": None,
                    "dispatchedAt": None,
                    "dispatchToken": None,
                    "slots": [],
                    "slotHolder": None,
                }
            },
        ):
            dispatcher.release(services, document)
            store.take_queue_place(services.db, document.get("lane", ""), 2**62)
            store.take_queue_place(services.db, store.workspace_queue(document["workspaceId"]), 2**62)
            backlog.push(document.get("lane", ""), document["_id"])
            report.requeued.append(document["_id"])
            log.warning(
                "job %s: lease expired (attempt %d of %d); queued again", document["_id"], attempts, maximum
            )


def _resend_lost(services: Services, now: datetime, report: ReconcileReport) -> None:
    cutoff = now - timedelta(seconds=REDISPATCH_AFTER_SECONDS)
    stale = store.in_state(
        services.db,
        JobState.QUEUED.value,
        projection={"dispatchToken": 1, "dispatchedAt": 1},
        extra={"dispatchedAt": {"$lt": cutoff}},
    )
    for document in stale:
        token = document.get("dispatchToken")
        if token and store.update_if(
            services.db,
            document["_id"],
            {"state": JobState.QUEUED.value, "dispatchToken": token},
            {"$set": {"dispatchedAt": now}},
        ):
            send_execute(services, document["_id"], token)
            report.resent.append(document["_id"])


def _release_stale_holders(services: Services, report: ReconcileReport) -> None:
    slots = store.all_slots(services.db)
    holders = {h for hs in slots.values() for h in hs}
    if not holders:
        return
    job_ids = list({h.split("/")[0] for h in holders})
    current = {d["_id"]: d for d in store.find_many(services.db, job_ids, {"state": 1, "slotHolder": 1})}
    cutoff = time.time() - STALE_HOLDER_SECONDS
    for key, key_holders in slots.items():
        for holder in key_holders:
            parts = holder.split("/")
            stamp = float(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0.0
            document = current.get(parts[0])
            alive = (
                document is not None
                and document.get("slotHolder") == holder
                and document.get("state") in (JobState.QUEUED.value, JobState.RUNNING.value)
            )
            if not alive and stamp < cutoff:
                store.release_slots(services.db, [key], holder)
                report.released_holders += 1


def reconcile(services: Services, now: datetime | None = None) -> ReconcileReport:
    """One recovery pass (idempotent; safe to run from several processes at once)."""
    now = now or datetime.now(UTC)
    report = ReconcileReport()
    _requeue_expired(services, now, report)
    _resend_lost(services, now, report)
    _release_stale_holders(services, report)
    report.rebuilt = dispatcher.ensure_built(services, Backlog(services.redis))
    report.dispatched = dispatcher.dispatch(services)
    if report.requeued or report.failed or report.resent or report.released_holders or report.rebuilt:
        log.info("reconcile: %s", report)
    return report
