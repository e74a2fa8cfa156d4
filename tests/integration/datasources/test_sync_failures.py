"""How a sync meets the app's failures: Retry-After followed, 5xx retried with a bounded backoff,
auth refusals fail it at once; in every case the claim is freed and the next sync resumes."""

from __future__ import annotations

import pytest

from engine.connectors import AppUnavailable
from engine.datasources.sync import UNAVAILABLE_BACKOFF_SECONDS, SyncFailed, run_sync
from engine.store import data_sources as sources_store
from tests.integration.datasources.sync_helpers import connect_tenant, create_source


class Ctx:
    def __init__(self):
        self.lines: list[str] = []

    def should_stop(self) -> bool:
        return False

    def log(self, message: str) -> None:
        self.lines.append(message)


class Sleeps(list):
    """Records requested sleeps without sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_retry_after_is_followed_and_5xx_retried(services, demo):
    demo.admin("seed", count=300)
    demo.admin("faults", retry_after_seconds=7, fail_next=[429, 503, 500])
    source = create_source(connect_tenant(services, demo.url), pageSize=100)
    sleeps = Sleeps()
    result = run_sync(services, source["id"], job_id="job_a", mode="full", ctx=Ctx(), sleep=sleeps)
    assert result["status"] == "completed" and result["created"] == 300
    assert (result["rateLimited"], result["unavailable"]) == (1, 2)
    # 7 s waited for the 429 (in slices, polling should_stop), then the first two backoff steps
    assert (
        pytest.approx(sum(sleeps), abs=0.5)
        == 7 + UNAVAILABLE_BACKOFF_SECONDS[0] + UNAVAILABLE_BACKOFF_SECONDS[1]
    )


def test_an_app_down_for_good_fails_the_sync_keeping_its_cursor(services, demo):
    demo.admin("seed", count=300)
    source = create_source(connect_tenant(services, demo.url), pageSize=100)
    sleeps = Sleeps()

    # One page in (then stopped), the app goes down for good
    first = run_sync(
        services,
        source["id"],
        job_id="job_1",
        mode="full",
        ctx=_StopAfterOnePage(services, source),
        sleep=sleeps,
    )
    assert first["status"] == "stopped" and first["pages"] == 1
    demo.admin("faults", rate_500=1.0)
    with pytest.raises(AppUnavailable):
        run_sync(services, source["id"], job_id="job_2", mode="full", ctx=Ctx(), sleep=sleeps)
    document = sources_store.find_by_id(services.db, source["id"])
    assert (
        document["state"] == "failed" and document["activeJobId"] is None and "500" in document["lastError"]
    )
    assert document["currentSync"]["pages"] == 1 and document["currentSync"]["cursor"]
    assert len(sleeps) >= len(UNAVAILABLE_BACKOFF_SECONDS)

    # The app is back: the next sync resumes from the cursor
    demo.admin("faults", rate_500=0.0)
    resumed = run_sync(services, source["id"], job_id="job_3", mode="full", ctx=Ctx(), sleep=sleeps)
    assert resumed["status"] == "completed" and resumed["resumes"] == 2 and resumed["created"] == 300
    assert sources_store.find_by_id(services.db, source["id"])["state"] == "idle"


class _StopAfterOnePage(Ctx):
    def __init__(self, services, source):
        super().__init__()
        self.services, self.source = services, source

    def should_stop(self) -> bool:
        document = sources_store.find_by_id(self.services.db, self.source["id"])
        return (document.get("currentSync") or {}).get("pages", 0) >= 1


def test_refused_credentials_fail_the_sync_and_mark_the_connection(services, demo):
    tenant = connect_tenant(services, demo.url)
    source = create_source(tenant)
    from engine.domain import connections

    connection = connections.get_connection_by_id(services, tenant.connection["id"])
    bound = connections.bind(services, connection)
    connections.persist_refreshed(services, bound, {**bound.credentials, "apiKey": "wrong-key"})
    with pytest.raises(SyncFailed):
        run_sync(services, source["id"], job_id="job_x", mode="full", ctx=Ctx())
    document = sources_store.find_by_id(services.db, source["id"])
    assert document["state"] == "failed" and document["activeJobId"] is None and document["lastError"]
    assert connections.get_connection_by_id(services, tenant.connection["id"]).state.value == "ERROR"
