"""Tasks every deployment has."""

from __future__ import annotations

from tasks.app import celery_app


@celery_app.task(name="instant.ping")
def ping(value: str = "pong") -> str:
    """Echo; used by health checks and tests to see a worker take a job."""
    return value
