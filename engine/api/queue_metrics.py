"""Cluster-wide queue gauges on the API's /prometheus, computed at scrape time from MongoDB and
Redis (not from this process), so every API replica reports the same values (domain.md §7).

- instant_tasks_jobs_waiting: the length of the broker's `instant` list (an action run is
  recorded in MongoDB when it ends, so the messages are where waiting runs are).
- instant_tasks_jobs_active: action runs recorded as running (a run that calls out records its
  claim before it does; a transform ends in microseconds).
- queued_tasks_workers: queued workers whose heartbeat is fresh (Redis, server clock).
- queued_tasks_workers_required: see engine/jobs/metrics.py.
- queued_tasks_jobs{kind,state}: jobs per kind and state (flow runs are kind "flow-run").
"""

from __future__ import annotations

import logging

from flask import Flask
from prometheus_client.core import GaugeMetricFamily

from engine.api.metrics import add_gauge_source
from engine.jobs.metrics import jobs_by_kind_and_state, queue_figures
from engine.limits.rate import instant_counts

log = logging.getLogger(__name__)


def _gauges(app: Flask):
    services = app.extensions["engine.services"]
    waiting, active = instant_counts(services)
    yield GaugeMetricFamily("instant_tasks_jobs_active", "Instant tasks being processed", value=active)
    yield GaugeMetricFamily("instant_tasks_jobs_waiting", "Instant tasks waiting for a worker", value=waiting)
    figures = queue_figures(services)
    yield GaugeMetricFamily(
        "queued_tasks_workers", "Queued-tasks workers alive (fresh heartbeat)", value=figures.workers
    )
    yield GaugeMetricFamily(
        "queued_tasks_workers_required",
        "Queued-tasks workers needed for all work that limits let run now, plus running work",
        value=figures.required,
    )
    by_state = GaugeMetricFamily(
        "queued_tasks_jobs", "Queued-task jobs by kind and state", labels=["kind", "state"]
    )
    for (kind, state), count in sorted(jobs_by_kind_and_state(services).items()):
        by_state.add_metric([kind, state], count)
    yield by_state


def init_app(app: Flask) -> None:
    def source():
        try:
            yield from _gauges(app)
        except Exception as error:  # noqa: BLE001 - a store outage must not break the request metrics
            log.warning("queue gauges unavailable: %s", error)

    add_gauge_source(app, source)
