"""Running one job in a queued worker: claim, lease renewal, cooperative stop, and the time and
memory limits (MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS, MAX_QUEUED_TASKS_MEMORY_MB).

The claim is a conditional update (queued + this dispatch's token -> running, lease owner and
expiry, attempts + 1): two workers never run the same job at once. While the handler runs, a
watchdog thread renews the lease every LEASE_RENEW_SECONDS (reading stopRequested at the same
time), and checks wall time and the process's RSS every WATCHDOG_TICK_SECONDS. On a breach it
records the failure first (so the reason is kept) and then ends the process (`os._exit`): the
prefork pool starts a fresh child, Celery requeues the message (reject on worker lost), and the
next claim of that message finds the job finished and only acks it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil

from engine.jobs import dispatch as dispatcher
from engine.jobs.model import Job, JobState
from engine.jobs.registry import JobContext, UnknownJobKind, handler_for
from engine.services import Services
from engine.store import jobs as store
from engine.timers import ProcessThread

log = logging.getLogger(__name__)

LEASE_SECONDS = 15.0
"""A running job's lease; the reconciler requeues a job whose lease is older (its worker died)."""
LEASE_RENEW_SECONDS = 1.0
"""How often the lease is extended and stopRequested re-read (so a stop is seen within this)."""
WATCHDOG_TICK_SECONDS = 0.2
STOP_GRACE_SECONDS = 5.0
"""After a stop is seen, the handler has this long to return before its process is ended."""
EXIT_CODE_LIMIT = 70
MAX_CHAIN_SECONDS = 5.0
"""A worker runs further jobs it dispatches to itself for this long, then hands back to Celery
(which acks the first message; a warm shutdown waits for at most this plus the running job)."""


def _now() -> datetime:
    return datetime.now(UTC)


def error_of(exc: BaseException) -> dict[str, str]:
    """The job's error for an exception: its `type` attribute (else class name) and message."""
    kind = getattr(exc, "type", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return {"type": kind if isinstance(kind, str) and kind else type(exc).__name__, "message": str(message)}


def claim(services: Services, job_id: str, token: str, worker_id: str) -> Job | None:
    """Take the job for this worker if this dispatch is current and the job still queued."""
    now = _now()
    if not store.update_if(
        services.db,
        job_id,
        {"state": JobState.QUEUED.value, "dispatchToken": token},
        {
            "$set": {
                "state": JobState.RUNNING.value,
                "leaseOwner": worker_id,
                "leaseExpiresAt": now + timedelta(seconds=LEASE_SECONDS),
                "startedAt": now,
            },
            "$inc": {"attempts": 1},
        },
    ):
        return None
    document = store.find(services.db, job_id)
    if document is None:  # deleted since (a workspace removed): nothing to run
        return None
    store.release_queue_places(
        services.db, [document.get("lane", ""), store.workspace_queue(document["workspaceId"])]
    )
    return Job.from_document(document)


def finish(
    services: Services,
    job: Job,
    worker_id: str,
    state: JobState,
    *,
    result: Any = None,
    error: dict | None = None,
    keep_global_slot: bool = False,
) -> bool:
    """Record the outcome if this worker still holds the job; release its slots. True if recorded.

    keep_global_slot: leave the job's global (worker) slot in place, for the worker to hand over
    to the next job it takes (dispatch_and_take's handoff) or release."""
    if not store.update_if(
        services.db,
        job.id,
        {"state": JobState.RUNNING.value, "leaseOwner": worker_id},
        {
            "$set": {
                "state": state.value,
                "result": result,
                "error": error,
                "finishedAt": _now(),
                "leaseOwner": None,
                "leaseExpiresAt": None,
            }
        },
    ):
        return False
    # `job` was read after the claim: its slots are those of the dispatch it was claimed with.
    dispatcher.release_job(services, job, keep_global_slot=keep_global_slot)
    return True


def kept_global_holder(job: Job) -> str | None:
    """The global-slot holder a job finished with keep_global_slot leaves in place, if any."""
    return job.slot_holder if job.slot_holder and dispatcher.GLOBAL_SLOT in job.slots else None


class Watchdog:
    """The watch over one running job: renews its lease, relays stop requests, and enforces the
    time and memory limits, one `tick()` at a time (driven by this process's WatchdogThread)."""

    def __init__(
        self,
        services: Services,
        job: Job,
        ctx: JobContext,
        worker_id: str,
        *,
        max_seconds: float,
        max_memory_mb: float,
        exit_process: Callable[[int], None],
    ):
        self.services, self.job, self.ctx, self.worker_id = services, job, ctx, worker_id
        self.max_seconds, self.max_memory_mb = max_seconds, max_memory_mb
        self.exit_process = exit_process
        self.done = threading.Event()
        self.started_at = time.monotonic()
        self.stop_seen_at: float | None = None
        self.last_renewal = self.started_at
        self.process = psutil.Process()

    def rss_mb(self) -> float:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total / (1024 * 1024)

    def _end(self, state: JobState, error: dict | None) -> None:
        if self.done.is_set():
            return
        if finish(self.services, self.job, self.worker_id, state, error=error):
            log.warning("job %s: %s; ending this worker process", self.job.id, error or state.value)
            try:
                dispatcher.dispatch(self.services)
            finally:
                self.exit_process(EXIT_CODE_LIMIT)

    def tick(self) -> bool:
        """One check of the running job; False once there is nothing left to watch."""
        if self.done.is_set():
            return False
        now = time.monotonic()
        if now - self.started_at > self.max_seconds:
            self._end(
                JobState.FAILED,
                {
                    "type": "time_limit",
                    "message": f"the job ran longer than {self.max_seconds:g} s (MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS)",
                },
            )
            return False
        rss = self.rss_mb()
        if rss > self.max_memory_mb:
            self._end(
                JobState.FAILED,
                {
                    "type": "memory_limit",
                    "message": f"the job used {rss:.0f} MB, above {self.max_memory_mb:g} MB (MAX_QUEUED_TASKS_MEMORY_MB)",
                },
            )
            return False
        if now - self.last_renewal >= LEASE_RENEW_SECONDS:
            self.last_renewal = now
            if not self._renew():
                return False
        if self.stop_seen_at is not None and now - self.stop_seen_at > STOP_GRACE_SECONDS:
            self._end(JobState.STOPPED, None)
            return False
        return True

    def _renew(self) -> bool:
        try:
            renewed = store.update_if(
                self.services.db,
                self.job.id,
                {"state": JobState.RUNNING.value, "leaseOwner": self.worker_id},
                {"$set": {"leaseExpiresAt": _now() + timedelta(seconds=LEASE_SECONDS)}},
            )
            if not renewed:
                if self.done.is_set():
                    return False
                # The job is no longer ours (the reconciler requeued it after a long pause): never
                # let two workers run it at once.
                log.error("job %s: lease lost; ending this worker process", self.job.id)
                self.exit_process(EXIT_CODE_LIMIT)
                return False
            document = store.find(self.services.db, self.job.id) or {}
            if document.get("stopRequested") and self.stop_seen_at is None:
                self.stop_seen_at = time.monotonic()
                self.ctx.request_stop()
        except Exception as error:  # noqa: BLE001 - a store hiccup: try again next tick; the lease has slack
            log.warning("job %s: lease renewal failed: %s", self.job.id, error)
        return True


class WatchdogThread(threading.Thread):
    """One per process: ticks every watched job each WATCHDOG_TICK_SECONDS (a thread started per
    job cost about a millisecond of every job's latency)."""

    def __init__(self) -> None:
        super().__init__(name="job-watchdog", daemon=True)
        self._watches: set[Watchdog] = set()
        self._changed = threading.Condition()

    def watch(self, watchdog: Watchdog) -> None:
        with self._changed:
            self._watches.add(watchdog)
            self._changed.notify()

    def unwatch(self, watchdog: Watchdog) -> None:
        watchdog.done.set()
        with self._changed:
            self._watches.discard(watchdog)

    def run(self) -> None:
        while True:
            with self._changed:
                while not self._watches:
                    self._changed.wait()
            time.sleep(WATCHDOG_TICK_SECONDS)
            with self._changed:
                watches = list(self._watches)
            for watchdog in watches:
                try:
                    keep = watchdog.tick()
                except Exception:  # noqa: BLE001 - never let one job's watch end the others'
                    log.exception("job %s: watchdog tick failed", watchdog.job.id)
                    keep = True
                if not keep:
                    with self._changed:
                        self._watches.discard(watchdog)


_watchdog_thread = ProcessThread(WatchdogThread)


def watchdog_thread() -> WatchdogThread:
    """This process's WatchdogThread, started on first use (again in a forked child)."""
    return _watchdog_thread.get()


def execute(
    services: Services,
    job_id: str,
    token: str,
    worker_id: str,
    *,
    exit_process: Callable[[int], None] = os._exit,
) -> str:
    """Run one dispatched job to its end in this process, then - for up to MAX_CHAIN_SECONDS - the
    jobs the dispatcher picks next for this free worker, each claimed in the same write as its
    dispatch (no Celery round trip between them). Returns the first job's outcome (or 'skipped')."""
    job = claim(services, job_id, token, worker_id)
    if job is None:
        return "skipped"
    first: str | None = None
    deadline = time.monotonic() + MAX_CHAIN_SECONDS
    dispatched = False
    kept: str | None = None  # this worker's global slot, kept from the job it just finished
    try:
        while job is not None:
            dispatched = False
            outcome, kept = _run_claimed(services, job, worker_id, exit_process, keep_global_slot=True)
            first = first or outcome
            if time.monotonic() >= deadline:
                break
            # Fair as any dispatch (the lane rotation picks it); other free slots get messages.
            handoff, kept = kept, None
            job = dispatcher.dispatch_and_take(services, worker_id, LEASE_SECONDS, handoff=handoff)
            dispatched = job is None
    finally:
        if kept is not None:
            store.release_slots(services.db, [dispatcher.GLOBAL_SLOT], kept)
        if not dispatched:
            dispatcher.dispatch(services)
    return first or "skipped"


def _run_claimed(
    services: Services,
    job: Job,
    worker_id: str,
    exit_process: Callable[[int], None],
    *,
    keep_global_slot: bool = False,
) -> tuple[str, str | None]:
    """Run a claimed job to its end; returns (its state, the global-slot holder kept or None)."""

    def done(state: JobState, **outcome: Any) -> tuple[str, str | None]:
        recorded = finish(services, job, worker_id, state, keep_global_slot=keep_global_slot, **outcome)
        return state.value, (kept_global_holder(job) if recorded and keep_global_slot else None)

    ctx = JobContext(services, job)
    if job.stop_requested:
        return done(JobState.STOPPED)
    try:
        handler = handler_for(job.kind)
    except UnknownJobKind as unknown:
        return done(JobState.FAILED, error={"type": "unknown_kind", "message": str(unknown)})
    config = services.config
    watchdog = Watchdog(
        services,
        job,
        ctx,
        worker_id,
        max_seconds=config.max_queued_tasks_process_time_seconds,
        max_memory_mb=config.max_queued_tasks_memory_mb,
        exit_process=exit_process,
    )
    watchers = watchdog_thread()
    watchers.watch(watchdog)
    state, result, error = JobState.COMPLETED, None, None
    try:
        result = handler(job, ctx)
        if ctx.should_stop():
            state = JobState.STOPPED
    except Exception as exc:  # noqa: BLE001 - any handler failure is the job's failure
        state, error = JobState.FAILED, error_of(exc)
        log.info("job %s failed: %s", job.id, error)
    finally:
        watchers.unwatch(watchdog)
    return done(state, result=result, error=error)
