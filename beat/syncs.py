"""Orchestrator duty: queue due data-source syncs and event pulls; free claims of dead sync jobs.

Idempotent: each due time is claimed by a conditional update of the data source (only while no
sync holds it and its due time is unchanged), so two active orchestrators queue it once.
"""

from __future__ import annotations

import logging
from datetime import datetime

from beat.duties import duty
from engine.datasources import service
from engine.services import Services

log = logging.getLogger(__name__)

SYNCS_EVERY_SECONDS = 5.0
"""How often due syncs are looked for (intervals are at least 10 s)."""
STALE_CLAIMS_EVERY_SECONDS = 30.0


@duty("data-source-syncs", every_seconds=SYNCS_EVERY_SECONDS)
def queue_due_syncs(services: Services, now: datetime) -> list[str]:
    """Queue every sync and event pull due at `now`; returns the job ids queued."""
    queued = service.enqueue_due(services, now)
    if queued:
        log.info("queued %d data-source syncs", len(queued))
    return queued


@duty("data-source-stale-claims", every_seconds=STALE_CLAIMS_EVERY_SECONDS)
def release_stale_claims(services: Services, now: datetime) -> list[str]:
    """Free data sources whose sync job ended without releasing them (so syncs go on)."""
    released = service.release_stale_claims(services, now)
    if released:
        log.warning("released %d data sources from ended sync jobs", len(released))
    return released
