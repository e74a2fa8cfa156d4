"""Schedule triggers: fire each due flow instance exactly once, even with two active replicas.

The run's job id is derived from (instance, due time), so a second fire of the same due time is
refused by MongoDB's unique `_id`; the instance's nextRunAt advances with a conditional update.
A fire missed while every orchestrator was down runs once on recovery if it is within
CATCH_UP_WINDOW_SECONDS, otherwise it is recorded as skipped. If the previous scheduled run is
still queued or running, the overlap policy applies (`skip`, the default, or `allow`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo.errors import DuplicateKeyError

from beat.duties import duty
from engine.errors import Conflict
from engine.services import Services
from engine.store import flow_instances as instances_store
from engine.store import schedule_fires

log = logging.getLogger(__name__)

SCHEDULE_TICK_SECONDS = 1.0
"""How often the active orchestrator looks for due schedules."""
CATCH_UP_WINDOW_SECONDS = 300.0
"""A fire missed by less than this when the orchestrator recovers still runs (once)."""
ACTIVE_RUN_STATES = frozenset({"queued", "running"})


class Outcome:
    FIRED = "fired"
    SKIPPED_MISSED = "skipped-missed"
    SKIPPED_OVERLAP = "skipped-overlap"
    DUPLICATE = "duplicate"


@dataclass
class ScheduleReport:
    """What one pass did, by outcome."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


def _previous_run_active(services: Services, run_id: str | None) -> bool:
    if not run_id:
        return False
    from engine.errors import NotFound
    from engine.jobs.service import get_job

    try:
        return str(get_job(services, run_id).state) in ACTIVE_RUN_STATES
    except NotFound:
        return False


def fire_instance(services: Services, document: dict, now: datetime) -> str:
    """Fire (or skip) the due time of one instance document; returns the outcome."""
    from engine.flows.runs import enqueue_flow_run
    from engine.flows.service import FlowInstance, next_run_at

    instance = FlowInstance.from_document(document)
    due: datetime = document["nextRunAt"]
    schedule = document["schedule"]
    following = next_run_at(schedule, max(due, now))
    run_id = schedule_fires.fire_id(instance.id, due)
    if now - due > timedelta(seconds=CATCH_UP_WINDOW_SECONDS):
        outcome, reason = Outcome.SKIPPED_MISSED, f"missed by {(now - due).total_seconds():.0f} s"
    elif schedule.get("overlap", "skip") == "skip" and _previous_run_active(
        services, document.get("lastScheduledRunId")
    ):
        outcome, reason = Outcome.SKIPPED_OVERLAP, "the previous scheduled run is still going"
    else:
        outcome, reason = Outcome.FIRED, None
        try:
            enqueue_flow_run(
                services,
                instance,
                {"scheduledAt": due.isoformat(), "firedAt": now.isoformat()},
                launched_by="schedule",
                job_id=run_id,
            )
        except (DuplicateKeyError, Conflict):
            outcome = Outcome.DUPLICATE  # another replica fired this due time already
    if outcome != Outcome.DUPLICATE:
        schedule_fires.record(
            services.db,
            instance.id,
            due,
            outcome,
            now,
            run_id=run_id if outcome == Outcome.FIRED else None,
            reason=reason,
        )
    extra = {"lastScheduledRunId": run_id} if outcome == Outcome.FIRED else {}
    instances_store.advance_schedule(services.db, instance.id, due, following, extra)
    if outcome != Outcome.FIRED:
        log.info(
            "schedule of flow instance %s due %s: %s%s",
            instance.id,
            due.isoformat(),
            outcome,
            f" ({reason})" if reason else "",
        )
    return outcome


@duty("schedules", every_seconds=SCHEDULE_TICK_SECONDS)
def fire_due_schedules(services: Services, now: datetime) -> ScheduleReport:
    """Fire every enabled schedule-trigger instance whose nextRunAt has passed."""
    report = ScheduleReport()
    for document in instances_store.due_schedules(services.db, now):
        try:
            report.add(fire_instance(services, document, now))
        except Exception:  # noqa: BLE001 - one bad instance must not block the others
            log.exception("firing the schedule of flow instance %s failed", document.get("_id"))
            report.add("error")
    return report
