"""GET /prometheus: request metrics from every gunicorn worker, plus cluster-wide gauges.

Under gunicorn each worker is a process, so prometheus_client runs in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR). Cluster gauges (queue depths, workers required) are computed at
scrape time from shared state, so every API replica reports the same values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import PrometheusMetrics

GaugeSource = Callable[[], Iterable[GaugeMetricFamily]]

blueprint = Blueprint("metrics", __name__)


class _ClusterCollector:
    def __init__(self, sources: list[GaugeSource]):
        self.sources = sources

    def collect(self):
        for source in self.sources:
            yield from source()


def init_metrics(app: Flask) -> None:
    """Instrument requests with prometheus-flask-exporter and serve /prometheus."""
    # group_by the URL rule keeps label cardinality bounded (ids stay out of labels).
    PrometheusMetrics(app, path=None, group_by="url_rule", defaults_prefix="engine")
    app.extensions.setdefault("engine.gauge_sources", [])
    app.register_blueprint(blueprint)


def add_gauge_source(app: Flask, source: GaugeSource) -> None:
    """Register a function whose gauges are computed at each scrape."""
    app.extensions.setdefault("engine.gauge_sources", []).append(source)


@blueprint.get("/prometheus")
def prometheus() -> Response:
    """The exposition: process-local metrics (merged across workers) and cluster gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        local = CollectorRegistry()
        MultiProcessCollector(local)
    else:
        local = REGISTRY
    cluster = CollectorRegistry()
    cluster.register(_ClusterCollector(current_app.extensions.get("engine.gauge_sources", [])))
    body = generate_latest(local) + generate_latest(cluster)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)
