"""A sync through the real queue: POST /data-sources/{id}/sync, a queued worker runs it; the
worker is SIGKILLed mid-sync and the job, taken over by a new worker, resumes from the cursor."""

from __future__ import annotations

from engine.jobs.model import JobState
from engine.store import data_records as records_store
from engine.store import data_sources as sources_store
from tests import factories
from tests.e2e.jobhelpers import kill_tree, start_worker, wait_finished, wait_for
from tests.integration.datasources.sync_helpers import connect_tenant, create_source

COUNT = 3000
PAGE_SIZE = 30
TOTAL_PAGES = COUNT // PAGE_SIZE
KILL_AT_PAGES = 15


def test_sigkilled_worker_mid_sync_resumes_from_the_cursor_on_a_new_worker(
    services, engine_env, start_engine, demo
):
    # Given 3,000 contacts (an occasional 429 slows the pages) and a queued worker
    demo.admin("seed", count=COUNT)
    demo.admin("faults", rate_429=0.05, retry_after_seconds=1, seed=5)
    tenant = connect_tenant(services, demo.url)
    source = create_source(tenant, pageSize=PAGE_SIZE)
    worker = start_worker(start_engine, engine_env)

    # When a full sync is requested and the worker is killed after 15 pages
    response = tenant.client.post(
        f"/data-sources/{source['id']}/sync", json={"full": True}, headers=factories.auth_header(tenant.admin)
    )
    assert response.status_code == 202
    job_id = response.get_json()["jobId"]

    def pages() -> int:
        document = sources_store.find_by_id(services.db, source["id"])
        return int((document.get("currentSync") or document.get("lastSync") or {}).get("pages", 0))

    wait_for(lambda: pages() >= KILL_AT_PAGES, 60, what="15 pages synced")
    kill_tree(worker)
    pages_at_kill = pages()
    requests_at_kill = demo.state.stats["requests"]
    assert pages_at_kill < TOTAL_PAGES, "the sync finished before the kill: slow it down"

    # ...and a new worker starts (the reconciler returns the job once its lease expires)
    start_worker(start_engine, engine_env)
    job = wait_finished(services, job_id, timeout_seconds=120, reconcile_every=2.0)

    # Then the job completed once, resuming from the cursor: the second attempt fetched only the rest
    assert job.state is JobState.COMPLETED, job.error
    assert job.attempts >= 2 and job.result["resumes"] >= 1
    document = sources_store.find_by_id(services.db, source["id"])
    assert document["activeJobId"] is None and document["state"] == "idle"
    assert document["lastSync"]["pages"] <= TOTAL_PAGES + 1  # at most the page in flight replayed
    fetched_after = demo.state.stats["requests"] - requests_at_kill  # pages and 429s after the kill
    assert fetched_after < TOTAL_PAGES
    stored = {d["externalId"]: d["record"] for d in records_store.all_of_source(services.db, source["id"])}
    assert stored == demo.live_contacts()
    assert records_store.count_events(services.db, source["id"], "created") == COUNT
    print(
        f"\nkilled at page {pages_at_kill}/{TOTAL_PAGES}; {fetched_after} requests after; attempts={job.attempts}"
    )
