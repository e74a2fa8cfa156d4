"""Queue figures the operators scale on (domain.md §7), computed from shared state (MongoDB and
Redis) so every API replica reports the same values.

queued_tasks_workers_required = in-flight jobs (running or dispatched) + the work that may start
now: per lane, min(ready jobs, free slots of its connection); per customer, min(sum over its
lanes, free customer slots); per workspace and limit class (flow runs, event pulls), min(sum,
free workspace slots). Work that limits keep waiting is not counted. Without ENABLE_LIMITS every
ready job counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from engine.jobs.model import FLOW_CLASS, JobState, limit_class
from engine.limits.service import limits_for
from engine.services import Services
from engine.store import jobs as store
from engine.store.job_backlog import Backlog


@dataclass(frozen=True)
class QueueFigures:
    workers: int
    required: int
    running: int
    dispatched: int
    ready: int
    startable: int


def _free(slots: dict[str, list[str]], key: str, limit: int) -> int:
    return max(0, limit - len(slots.get(key, [])))


def startable_work(services: Services) -> tuple[int, int]:
    """(ready jobs, how many of them the limits let start now)."""
    groups = store.ready_by_lane(services.db)
    ready = sum(g["n"] for g in groups)
    if not services.config.enable_limits:
        return ready, ready
    slots = store.all_slots(services.db)
    # customer -> class -> jobs startable within their connection's limit
    per_customer: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for group in groups:
        key = group["_id"]
        kind, workspace, customer, connection = (
            key["kind"],
            key["workspaceId"],
            key["customerId"],
            key.get("connectionId"),
        )
        limits = limits_for(services, workspace, customer)
        n = group["n"]
        if limit_class(kind) == FLOW_CLASS and connection:
            n = min(n, _free(slots, f"conn:{connection}", limits["parallelFlowRunsPerConnection"]))
        per_customer[(workspace, customer)][limit_class(kind)] += n
    per_workspace: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (workspace, customer), classes in per_customer.items():
        limits = limits_for(services, workspace, customer)
        budget = _free(slots, f"cus:{customer}", limits["parallelBackgroundJobsPerCustomer"])
        for name in ("flow", "pull", "other"):
            take = min(classes.get(name, 0), budget)
            budget -= take
            per_workspace[workspace][name] += take
    startable = 0
    for workspace, classes in per_workspace.items():
        limits = limits_for(services, workspace)
        startable += min(classes["flow"], _free(slots, f"wsflow:{workspace}", limits["parallelFlowRuns"]))
        startable += min(classes["pull"], _free(slots, f"wspull:{workspace}", limits["parallelEventPulls"]))
        startable += classes["other"]
    return ready, startable


def queue_figures(services: Services) -> QueueFigures:
    running = store.count_in_state(services.db, JobState.RUNNING.value)
    dispatched = len(
        store.in_state(
            services.db, JobState.QUEUED.value, projection={"_id": 1}, extra={"dispatchedAt": {"$ne": None}}
        )
    )
    ready, startable = startable_work(services)
    workers = Backlog(services.redis).live_workers()
    return QueueFigures(
        workers=workers,
        required=running + dispatched + startable,
        running=running,
        dispatched=dispatched,
        ready=ready,
        startable=startable,
    )


def jobs_by_kind_and_state(services: Services) -> dict[tuple[str, str], int]:
    """Job counts by (kind, state) (an aggregation: computed at scrape time)."""
    rows = services.db[store.COLLECTION].aggregate(
        [{"$group": {"_id": {"kind": "$kind", "state": "$state"}, "n": {"$sum": 1}}}]
    )
    return {(r["_id"]["kind"], r["_id"]["state"]): r["n"] for r in rows}
