"""The orchestrator's duty: due syncs queued once (even by two replicas), stale claims freed,
and event pulls (apps without webhooks) firing events for changes after their creation."""

from __future__ import annotations

from datetime import timedelta

import requests

from beat.syncs import queue_due_syncs, release_stale_claims
from engine.datasources import service
from engine.domain.common import now
from engine.jobs.service import get_job, request_stop
from engine.store import data_records as records_store
from engine.store import data_sources as sources_store
from tests.integration.datasources.sync_helpers import API_KEY, connect_tenant, create_source, run_handler


def test_due_syncs_are_queued_once_full_first_then_incremental(services, demo):
    demo.admin("seed", count=30)
    tenant = connect_tenant(services, demo.url)
    source = create_source(tenant, pullUpdatesIntervalSeconds=60, fullSyncIntervalSeconds=600)
    start = now()

    # Two replicas ticking at the same moment queue the first (full) sync once
    queued = queue_due_syncs(services, start) + queue_due_syncs(services, start)
    assert len(queued) == 1
    job = get_job(services, queued[0])
    assert job.kind == "data-source-sync" and job.payload["mode"] == "full"
    # While it is queued, nothing more is queued even when an incremental falls due
    assert queue_due_syncs(services, start + timedelta(seconds=61)) == []
    assert run_handler(services, job)["status"] == "completed"

    # Then an incremental after pullUpdatesIntervalSeconds, a full after fullSyncIntervalSeconds
    assert queue_due_syncs(services, start + timedelta(seconds=30)) == []
    [incremental] = queue_due_syncs(services, start + timedelta(seconds=61))
    assert get_job(services, incremental).payload["mode"] == "incremental"
    assert run_handler(services, get_job(services, incremental))["status"] == "completed"
    [full] = queue_due_syncs(services, start + timedelta(seconds=601))
    assert get_job(services, full).payload["mode"] == "full"
    assert sources_store.find_by_id(services.db, source["id"])["activeJobId"] == full


def test_a_claim_whose_job_ended_is_released(services, demo):
    tenant = connect_tenant(services, demo.url)
    source = create_source(tenant)
    [job_id] = queue_due_syncs(services, now())
    request_stop(services, job_id)  # a queued job stops at once, its handler never runs
    assert sources_store.find_by_id(services.db, source["id"])["activeJobId"] == job_id
    assert release_stale_claims(services, now()) == [source["id"]]
    document = sources_store.find_by_id(services.db, source["id"])
    assert (
        document["activeJobId"] is None and document["state"] == "idle" and "stopped" in document["lastError"]
    )


def test_an_event_pull_fires_events_for_changes_after_its_creation_only(services, demo):
    demo.admin("seed", count=40)
    tenant = connect_tenant(services, demo.url)
    pull = service.ensure_event_pull(
        services,
        workspace_id=tenant.workspace.id,
        customer_id=tenant.connection and _customer_id(services, tenant),
        connection_id=tenant.connection["id"],
        collection="contacts",
        interval_seconds=30,
    )
    assert (
        service.ensure_event_pull(
            services,
            workspace_id=tenant.workspace.id,
            customer_id=pull.customer_id,
            connection_id=tenant.connection["id"],
            collection="contacts",
        ).id
        == pull.id
    )
    ids = sorted(demo.live_contacts())
    with requests.Session() as session:
        session.headers["X-Api-Key"] = API_KEY
        for contact_id in ids[:3]:
            session.patch(
                f"{demo.url}/contacts/{contact_id}", json={"company": "Moved"}, timeout=5
            ).raise_for_status()
        session.post(f"{demo.url}/contacts", json={"email": "new@example.com"}, timeout=5).raise_for_status()

    [job_id] = queue_due_syncs(services, now())
    job = get_job(services, job_id)
    assert job.kind == "event-pull"
    result = run_handler(services, job)
    assert result["status"] == "completed"
    assert records_store.count_events(services.db, pull.id, "updated") == 3
    assert records_store.count_events(services.db, pull.id, "created") == 1
    # The next pull starts from the high-water mark: nothing new, nothing fired
    again = run_handler(
        services, get_job(services, queue_due_syncs(services, now() + timedelta(seconds=31))[0])
    )
    assert again["created"] == again["updated"] == 0
    assert records_store.count_events(services.db, pull.id) == 4


def _customer_id(services, tenant) -> str:
    return services.db["connections"].find_one({"_id": tenant.connection["id"]})["customerId"]
