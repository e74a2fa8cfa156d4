"""Done when (issue 7, item 3): 5,000 contacts over paginated pages with injected 429s and 500s,
then 100 changed and 10 deleted: MongoDB matches the app exactly, the right events fired,
progress is visible while the sync runs, and a crash in the middle resumes from the cursor."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from engine.store import data_records as records_store
from tests import factories
from tests.integration.datasources.sync_helpers import (
    API_KEY,
    Crash,
    CrashAfterPages,
    connect_tenant,
    create_source,
    run_handler,
    sync_job,
)

COUNT = 5000
PAGE_SIZE = 100
TOTAL_PAGES = COUNT // PAGE_SIZE
CRASH_AFTER_PAGES = 20


def stored_records(services, source_id: str) -> dict[str, dict]:
    return {d["externalId"]: d["record"] for d in records_store.all_of_source(services.db, source_id)}


def events(services, source_id: str, change: str) -> int:
    return records_store.count_events(services.db, source_id, change)


class ProgressWatcher(threading.Thread):
    """Reads GET /data-sources/{id} while a sync runs, keeping what it saw."""

    def __init__(self, tenant, source_id: str):
        super().__init__(daemon=True)
        self.tenant, self.source_id = tenant, source_id
        self.seen: list[tuple[str, int, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            body = self.tenant.client.get(
                f"/data-sources/{self.source_id}", headers=factories.auth_header(self.tenant.admin)
            ).get_json()
            if body.get("currentSync"):
                self.seen.append((body["state"], body["pages"], body["recordsSeen"]))
            time.sleep(0.05)


def test_sync_of_5000_contacts_with_faults_a_crash_changes_and_deletions(services, demo):
    # Given 5,000 contacts in the app, and an app that throws 429s and 500s
    demo.admin("seed", count=COUNT)
    demo.admin(
        "faults", rate_429=0.03, rate_500=0.04, retry_after_seconds=1, seed=11, fail_next=[429, 500, 500]
    )
    tenant = connect_tenant(services, demo.url)
    source = create_source(
        tenant, pageSize=PAGE_SIZE, pullUpdatesIntervalSeconds=60, fullSyncIntervalSeconds=3600
    )

    # When the first (full) sync crashes after 20 pages, while someone watches its progress
    watcher = ProgressWatcher(tenant, source["id"])
    watcher.start()
    job = sync_job(source, "full")
    with pytest.raises(Crash):
        run_handler(services, job, CrashAfterPages(services, job, CRASH_AFTER_PAGES))
    crashed = tenant.client.get(
        f"/data-sources/{source['id']}", headers=factories.auth_header(tenant.admin)
    ).get_json()
    assert crashed["pages"] == CRASH_AFTER_PAGES and crashed["lastCursor"]
    assert crashed["activeJobId"] == job.id and crashed["state"] == "syncing"

    # ...and the job's next attempt runs it again
    requests_before = demo.state.stats["requests"]
    result = run_handler(services, job)
    watcher.done.set()
    watcher.join()

    # Then it resumed from the cursor, not from zero
    assert result["status"] == "completed" and result["resumes"] == 1
    pages_after_resume = result["pages"] - CRASH_AFTER_PAGES
    assert pages_after_resume == TOTAL_PAGES - CRASH_AFTER_PAGES < TOTAL_PAGES
    faults = demo.state.stats["faults429"] + demo.state.stats["faults500"]
    assert faults > 0 and result["rateLimited"] + result["unavailable"] > 0
    assert demo.state.stats["requests"] - requests_before < TOTAL_PAGES  # pages fetched + faulted attempts
    # progress was visible while it ran: pages climbing, state syncing
    pages_seen = sorted({pages for state, pages, _ in watcher.seen if state == "syncing"})
    assert len(pages_seen) >= 3 and pages_seen[0] < TOTAL_PAGES
    # MongoDB matches the app, and each contact fired exactly one `created`
    assert stored_records(services, source["id"]) == demo.live_contacts()
    assert (
        events(services, source["id"], "created"),
        events(services, source["id"], "updated"),
        events(services, source["id"], "deleted"),
    ) == (COUNT, 0, 0)
    detail = tenant.client.get(
        f"/data-sources/{source['id']}", headers=factories.auth_header(tenant.admin)
    ).get_json()
    assert detail["state"] == "idle" and detail["activeJobId"] is None and detail["lastSyncAt"]
    assert detail["lastSync"]["created"] == COUNT and detail["recordsSeen"] >= COUNT

    # Given 100 contacts changed and 10 deleted in the app
    demo.admin("faults", rate_429=0, rate_500=0)
    ids = sorted(demo.live_contacts())
    with requests.Session() as session:
        session.headers["X-Api-Key"] = API_KEY
        for contact_id in ids[::50]:
            session.patch(
                f"{demo.url}/contacts/{contact_id}", json={"company": "Changed Inc"}, timeout=5
            ).raise_for_status()
        for contact_id in ids[1:11]:
            session.delete(f"{demo.url}/contacts/{contact_id}", timeout=5).raise_for_status()

    # When an incremental sync runs: the 100 updates, fetched since the high-water mark only
    incremental = run_handler(services, sync_job(source, "incremental"))
    assert incremental["status"] == "completed" and incremental["updated"] == 100
    assert incremental["recordsSeen"] <= 100 + 1 + 10  # the inclusive boundary record at most once more
    assert events(services, source["id"], "updated") == 100

    # When a full sync runs: the 10 deletions are found by difference
    full = run_handler(services, sync_job(source, "full"))
    assert full["status"] == "completed" and full["deleted"] == 10 and full["created"] == 0

    # Then MongoDB matches the app exactly, and 5,000 created + 100 updated + 10 deleted fired
    assert stored_records(services, source["id"]) == demo.live_contacts()
    assert len(demo.live_contacts()) == COUNT - 10
    assert (
        events(services, source["id"], "created"),
        events(services, source["id"], "updated"),
        events(services, source["id"], "deleted"),
    ) == (COUNT, 100, 10)


def test_a_sync_stopped_midway_leaves_the_claim_free_and_the_next_one_resumes(services, demo):
    demo.admin("seed", count=1000)
    tenant = connect_tenant(services, demo.url)
    source = create_source(tenant, pageSize=100)

    class StopAfterFive(CrashAfterPages):
        def should_stop(self) -> bool:
            document = self.services.db["data_sources"].find_one({"_id": self.job.payload["dataSourceId"]})
            return (document.get("currentSync") or {}).get("pages", 0) >= 5

    job = sync_job(source, "full")
    stopped = run_handler(services, job, StopAfterFive(services, job, 5))
    assert stopped["status"] == "stopped" and stopped["pages"] == 5
    detail = tenant.client.get(
        f"/data-sources/{source['id']}", headers=factories.auth_header(tenant.admin)
    ).get_json()
    assert detail["activeJobId"] is None and detail["currentSync"]["cursor"]

    resumed = run_handler(services, sync_job(source, "full"))
    assert resumed["status"] == "completed" and resumed["pages"] == 10 and resumed["resumes"] == 1
    assert events(services, source["id"], "created") == 1000
    assert stored_records(services, source["id"]) == demo.live_contacts()
