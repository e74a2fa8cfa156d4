"""Prometheus metrics of the runner, served at GET /api/v2/prometheus.

The runner is one process (threads, not gunicorn workers), so a plain registry is right here:
no multiprocess mode. The two job-space gauges are the autoscaling signal of domain.md §7
(keep (total - remaining) / total near 0.45).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

JOB_DURATION_BUCKETS_SECONDS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RunnerMetrics:
    """The runner's registry and its instruments."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, total_job_spaces: int, remaining_job_spaces: Callable[[], int]):
        self.registry = CollectorRegistry()
        total = Gauge(
            "custom_code_runner_total_job_spaces", "Jobs this runner accepts at once.", registry=self.registry
        )
        total.set(total_job_spaces)
        remaining = Gauge(
            "custom_code_runner_remaining_job_spaces", "Job spaces free right now.", registry=self.registry
        )
        remaining.set_function(remaining_job_spaces)
        self.jobs = Counter(
            "custom_code_runner_jobs",
            "Jobs run, by status and error type.",
            ["status", "error_type"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "custom_code_runner_rejected_jobs", "Jobs answered 429 (no job space).", registry=self.registry
        )
        self.duration = Histogram(
            "custom_code_runner_job_duration_seconds",
            "Job process wall-clock time.",
            buckets=JOB_DURATION_BUCKETS_SECONDS,
            registry=self.registry,
        )

    def observe(self, status: str, error_type: str | None, duration_ms: float) -> None:
        """Count one finished job."""
        self.jobs.labels(status=status, error_type=error_type or "").inc()
        self.duration.observe(duration_ms / 1000)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
