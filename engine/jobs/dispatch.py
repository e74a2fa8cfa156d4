"""Fair dispatch: jobs wait in MongoDB (a per-lane backlog); a message goes to Celery only when
the job may start now within its limits, at most one per free worker slot, rotating over lanes.

A lane is the backlog of one connection (connection work) or one customer. A job starts only if
it takes every slot it needs, each a conditional `$addToSet` on a `job_slots` document (see
engine/store/jobs.py), in this order:

- `global`: the live queued workers (heartbeats) - so Redis never holds more than one message
  per free worker, and a Redis loss strands nothing MongoDB cannot rebuild;
- with ENABLE_LIMITS: `conn:<id>` (parallelFlowRunsPerConnection), `cus:<id>`
  (parallelBackgroundJobsPerCustomer), `wsflow:<id>` (parallelFlowRuns) or `wspull:<id>`
  (parallelEventPulls).

Lanes are served round robin from the lane after the last one served (a pointer in Redis), one
job per lane per pass, so a customer with 100,000 queued runs delays another's single run by at
most one freed slot. A slot holder is `<job id>/<dispatch token>/<epoch seconds>`: the token
makes a stale message harmless (the worker's claim requires it), the time lets the reconciler
drop holders a crashed dispatcher left behind.

Dispatch runs after each enqueue, after each job finishes, and on the reconciler's tick; any
number of processes may run it at once (the conditional updates are the arbiters).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from engine.jobs.channel import send_execute
from engine.jobs.model import FLOW_CLASS, PULL_CLASS, Job, JobState, limit_class
from engine.limits.service import limits_for
from engine.services import Services
from engine.store import jobs as store
from engine.store.job_backlog import Backlog
from engine.timers import call_later

log = logging.getLogger(__name__)

GLOBAL_SLOT = "global"
MAX_LANES_PER_DISPATCH = 500
"""Lanes looked at by one dispatch call at most (blocked lanes cost a few fast updates each)."""
LANE_BATCH = 50
STALE_HEADS_PER_LANE = 20
"""Lane entries whose job is no longer waiting (stopped, duplicates after a rebuild) dropped per visit."""
REBUILD_LOCK_SECONDS = 60


@dataclass(frozen=True)
class SlotClaim:
    key: str
    limit: int


def slot_claims(services: Services, job: Job, workers: int) -> list[SlotClaim]:
    """The slots `job` needs to start now, global first."""
    claims = [SlotClaim(GLOBAL_SLOT, workers)]
    if not services.config.enable_limits:
        return claims
    limits = limits_for(services, job.workspace_id, job.customer_id)
    kind_class = limit_class(job.kind)
    if kind_class == FLOW_CLASS and job.connection_id:
        claims.append(SlotClaim(f"conn:{job.connection_id}", limits["parallelFlowRunsPerConnection"]))
    claims.append(SlotClaim(f"cus:{job.customer_id}", limits["parallelBackgroundJobsPerCustomer"]))
    if kind_class == FLOW_CLASS:
        claims.append(SlotClaim(f"wsflow:{job.workspace_id}", limits["parallelFlowRuns"]))
    elif kind_class == PULL_CLASS:
        claims.append(SlotClaim(f"wspull:{job.workspace_id}", limits["parallelEventPulls"]))
    return claims


def holder_of(job_id: str, token: str) -> str:
    return f"{job_id}/{token}/{int(time.time())}"


def release(services: Services, job_document: dict) -> None:
    """Give back every slot the job's current dispatch holds (idempotent)."""
    holder = job_document.get("slotHolder")
    if holder:
        store.release_slots(services.db, job_document.get("slots") or [], holder)


def release_job(services: Services, job: Job, *, keep_global_slot: bool = False) -> None:
    """Give back the slots of the dispatch this job was claimed with (idempotent); with
    keep_global_slot, all but the global one (the worker hands that one over itself)."""
    if job.slot_holder:
        keys = [k for k in job.slots if not (keep_global_slot and k == GLOBAL_SLOT)]
        if keys:
            store.release_slots(services.db, keys, job.slot_holder)


def ensure_built(services: Services, backlog: Backlog) -> bool:
    """Rebuild the lanes from MongoDB if Redis lost them (FLUSHALL, restart). True if rebuilt."""
    if backlog.is_built():
        return False
    if not backlog.try_rebuild_lock(REBUILD_LOCK_SECONDS):
        return False
    try:
        entries = store.queued_undispatched_ids(services.db)
        if entries:
            backlog.push_many(entries)
        backlog.mark_built()
        log.info("job lanes rebuilt from MongoDB: %d queued jobs", len(entries))
        return True
    finally:
        backlog.release_rebuild_lock()


_SENT, _TAKEN, _EMPTY, _BLOCKED, _FULL = "sent", "taken", "empty", "blocked", "full"


@dataclass
class LocalTake:
    """Claim the first job this dispatch picks for this worker process instead of sending it a
    message (the worker that just finished a job runs the next one without a Celery round trip).

    `handoff`: the global-slot holder of the job this worker just finished, still in place; the
    take replaces it with the new job's holder in one write (instead of a release and a take),
    and the dispatch releases it if nothing was taken."""

    worker_id: str
    lease_seconds: float
    handoff: str | None = None


def _take_global(services: Services, take: LocalTake | None, holder: str, limit: int) -> bool:
    """Take a global slot for `holder`: by handing over this worker's own slot when it has one."""
    if take is not None and take.handoff is not None:
        previous, take.handoff = take.handoff, None
        if store.transfer_slot(services.db, GLOBAL_SLOT, previous, holder):
            return True
    return store.take_slot(services.db, GLOBAL_SLOT, holder, limit)


def _take_update(take: LocalTake, now: datetime, token: str, taken: list[str], holder: str) -> dict:
    """Dispatch and claim in one conditional write: the fields of both (see execution.claim)."""
    return {
        "$set": {
            "dispatchedAt": now,
            "dispatchToken": token,
            "slots": taken,
            "slotHolder": holder,
            "state": JobState.RUNNING.value,
            "leaseOwner": take.worker_id,
            "leaseExpiresAt": now + timedelta(seconds=take.lease_seconds),
            "startedAt": now,
        },
        "$inc": {"attempts": 1},
    }


def _try_lane(
    services: Services, backlog: Backlog, lane: str, workers: int, take: LocalTake | None
) -> tuple[str, Job | None]:
    for _ in range(STALE_HEADS_PER_LANE):
        job_id = backlog.head(lane)
        if job_id is None:
            return _EMPTY, None
        document = store.find(services.db, job_id)
        if (
            document is None
            or document["state"] != JobState.QUEUED
            or document.get("dispatchedAt") is not None
        ):
            backlog.pop_if_head(lane, job_id)
            continue
        job = Job.from_document(document)
        token = uuid.uuid4().hex
        holder = holder_of(job.id, token)
        taken: list[str] = []
        for claim in slot_claims(services, job, workers):
            if claim.key == GLOBAL_SLOT:
                got = _take_global(services, take, holder, claim.limit)
            else:
                got = store.take_slot(services.db, claim.key, holder, claim.limit)
            if not got:
                store.release_slots(services.db, taken, holder)
                return (_FULL if claim.key == GLOBAL_SLOT else _BLOCKED), None
            taken.append(claim.key)
        now = datetime.now(UTC)
        if take is not None:
            update = _take_update(take, now, token, taken, holder)
        else:
            update = {
                "$set": {"dispatchedAt": now, "dispatchToken": token, "slots": taken, "slotHolder": holder}
            }
        # The arbiter: only one dispatcher (or a stop) moves a queued, undispatched job on.
        if not store.update_if(
            services.db, job.id, {"state": JobState.QUEUED.value, "dispatchedAt": None}, update
        ):
            store.release_slots(services.db, taken, holder)
            backlog.pop_if_head(lane, job_id)
            continue
        if take is None:
            backlog.pop_if_head(lane, job_id)
            send_execute(services, job.id, token)
            return _SENT, None
        # The job is ours and running: hand it over whatever happens to the bookkeeping below (a
        # lane entry left behind is dropped as stale; the queue counters are only a size limit,
        # so they are given back off the job's path, on the timer thread, while the job runs).
        try:
            backlog.pop_if_head(lane, job_id)
            call_later(0.0, partial(_release_places, services, job))
        except Exception as error:  # noqa: BLE001
            log.warning("job %s taken, bookkeeping failed: %s", job.id, error)
        fields = update["$set"]
        return _TAKEN, Job.from_document({**document, **fields, "attempts": job.attempts + 1})
    return _BLOCKED, None


def _release_places(services: Services, job: Job) -> None:
    store.release_queue_places(services.db, [job.lane, store.workspace_queue(job.workspace_id)])


def dispatch(services: Services, *, max_messages: int | None = None) -> int:
    """Send messages for jobs that may start now, fairly; returns how many were sent."""
    return _dispatch(services, max_messages, None)[0]


def dispatch_and_take(
    services: Services, worker_id: str, lease_seconds: float, *, handoff: str | None = None
) -> Job | None:
    """Dispatch as `dispatch` does, but claim the first job picked for `worker_id` (running, with
    a lease of lease_seconds) and return it instead of sending its message; None if none may start.

    `handoff`: the global-slot holder this worker kept from its last job (see LocalTake); it is
    passed on to the taken job, or released."""
    take = LocalTake(worker_id, lease_seconds, handoff)
    try:
        return _dispatch(services, None, take)[1]
    finally:
        if take.handoff is not None:
            store.release_slots(services.db, [GLOBAL_SLOT], take.handoff)


def _dispatch(services: Services, max_messages: int | None, take: LocalTake | None) -> tuple[int, Job | None]:
    backlog = Backlog(services.redis)
    built, workers, after = backlog.snapshot()
    if not built:
        ensure_built(services, backlog)
    if workers <= 0:
        return 0, None
    sent = 0
    taken_job: Job | None = None
    looked = 0
    # An upper bound of the free worker slots (other dispatchers may take some: take_slot decides).
    # A lone worker taking its own next job needs no count: it is the one slot, take_slot decides.
    free = (
        1
        if take is not None and workers == 1
        else workers
        - len(store.slot_holders(services.db, GLOBAL_SLOT))
        + (1 if take is not None and take.handoff is not None else 0)
    )
    while looked < MAX_LANES_PER_DISPATCH and free > 0:
        pass_sent = 0
        seen: set[str] = set()
        cursor = after
        while looked < MAX_LANES_PER_DISPATCH:
            lanes = [lane for lane in backlog.lanes_after(cursor, LANE_BATCH) if lane not in seen]
            if not lanes:
                break
            for lane in lanes:
                seen.add(lane)
                looked += 1
                cursor = lane
                outcome, job = _try_lane(
                    services, backlog, lane, workers, take if taken_job is None else None
                )
                if outcome in (_SENT, _TAKEN):
                    if job is not None:
                        taken_job = job
                    else:
                        sent += 1
                    pass_sent += 1
                    free -= 1
                    if lane != after:  # a worker chaining jobs of one lane leaves the pointer as it is
                        backlog.set_rotation(lane)
                    after = lane
                    if free <= 0 or (max_messages is not None and sent >= max_messages):
                        return sent, taken_job
                elif outcome == _FULL:
                    return sent, taken_job
        if pass_sent == 0:
            break
    return sent, taken_job
