"""Start the orchestrator: celery beat with the engine scheduler, plus the health server."""

from __future__ import annotations

import logging

from engine.config import Config, Mode
from engine.health import HealthChecker
from engine.healthserver import json_route, start_health_server
from engine.services import Services
from tasks.app import celery_app, configure_celery

log = logging.getLogger(__name__)


def run_orchestrator(config: Config) -> None:
    """Run beat until stopped."""
    configure_celery(celery_app, config)
    services = Services.from_config(config, app_name="engine-orchestrator")
    from beat.scheduler import Orchestrator
    from tasks.runtime import use_services

    use_services(services)
    orchestrator = Orchestrator(services)
    celery_app.engine_orchestrator = orchestrator  # type: ignore[attr-defined]
    checker = HealthChecker(
        services, Mode.ORCHESTRATOR.value, details=lambda: {"active": orchestrator.is_active}
    )

    def health() -> tuple[int, dict]:
        report = checker.report()
        return report.status_code, report.to_document()

    start_health_server(config.port, {"/": json_route(health)})
    log.info("starting orchestrator %s", orchestrator.owner)
    try:
        celery_app.Beat(
            scheduler="beat.scheduler:EngineScheduler",
            loglevel="DEBUG" if config.debug_all else "INFO",
            max_interval=2.0,
        ).run()
    finally:
        orchestrator.stop()
