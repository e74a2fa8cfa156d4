"""/data-sources: validation (400 naming the field), tenancy, progress fields, sync now, delete."""

from __future__ import annotations

import pytest

from engine.jobs.service import get_job
from engine.store import data_records as records_store
from tests import factories
from tests.integration.datasources.sync_helpers import connect_tenant, create_source, run_handler


@pytest.fixture
def tenant(services, demo):
    demo.admin("seed", count=120)
    return connect_tenant(services, demo.url)


def post(tenant, body, token=None):
    return tenant.client.post(
        "/data-sources", json=body, headers=factories.auth_header(token or tenant.admin)
    )


@pytest.mark.parametrize(
    "change, field",
    [
        ({"connectionId": None}, "connectionId"),
        ({"connectionId": "con_nope"}, "connectionId"),
        ({"collection": "deals"}, "collection"),
        ({"pullUpdatesIntervalSeconds": 1}, "pullUpdatesIntervalSeconds"),
        ({"pullUpdatesIntervalSeconds": "60"}, "pullUpdatesIntervalSeconds"),
        ({"fullSyncIntervalSeconds": 10**9}, "fullSyncIntervalSeconds"),
        ({"pullUpdatesIntervalSeconds": 7200, "fullSyncIntervalSeconds": 3600}, "fullSyncIntervalSeconds"),
        ({"pageSize": 0}, "pageSize"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_bodies_answer_400_naming_the_field(tenant, change, field):
    body = {"connectionId": tenant.connection["id"], "collection": "contacts", **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = post(tenant, body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_create_read_list_sync_now_and_delete(services, tenant):
    created = create_source(tenant, pullUpdatesIntervalSeconds=60, fullSyncIntervalSeconds=3600, pageSize=50)
    assert created["state"] == "idle" and created["recordsSeen"] == 0 and created["nextFullAt"]
    assert (
        post(tenant, {"connectionId": tenant.connection["id"], "collection": "contacts"}).status_code == 409
    )
    headers = factories.auth_header(tenant.admin)
    listed = tenant.client.get("/data-sources", headers=headers).get_json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]

    # Sync now: 202 with the job; a second one while it is queued is refused
    response = tenant.client.post(f"/data-sources/{created['id']}/sync", json={"full": True}, headers=headers)
    assert response.status_code == 202
    job = get_job(services, response.get_json()["jobId"])
    assert job.kind == "data-source-sync" and job.payload == {"dataSourceId": created["id"], "mode": "full"}
    again = tenant.client.post(f"/data-sources/{created['id']}/sync", json={}, headers=headers)
    assert again.status_code == 409 and again.get_json()["error"]["activeJobId"] == job.id
    assert (
        tenant.client.get(f"/data-sources/{created['id']}", headers=headers).get_json()["state"] == "queued"
    )

    # The queued job, run by its handler (what a queued worker does), syncs and frees the data source
    assert run_handler(services, job)["status"] == "completed"
    detail = tenant.client.get(f"/data-sources/{created['id']}", headers=headers).get_json()
    assert (detail["state"], detail["recordsSeen"], detail["pages"], detail["activeJobId"]) == (
        "idle",
        120,
        3,
        None,
    )
    assert detail["lastSync"]["created"] == 120 and detail["lastError"] is None and detail["lastSyncAt"]
    assert (
        tenant.client.post(f"/data-sources/{created['id']}/sync", json={}, headers=headers).status_code == 202
    )

    assert tenant.client.delete(f"/data-sources/{created['id']}", headers=headers).status_code == 204
    assert tenant.client.get(f"/data-sources/{created['id']}", headers=headers).status_code == 404
    assert records_store.count(services.db, created["id"]) == 0


def test_customers_see_and_sync_only_their_own(services, tenant):
    own = create_source(tenant, token=tenant.customer)
    assert own["customerId"]
    other_token = factories.customer_token(tenant.workspace, _secret_of(services, tenant), "c2")
    headers = factories.auth_header(other_token)
    assert tenant.client.get(f"/data-sources/{own['id']}", headers=headers).status_code == 404
    assert tenant.client.post(f"/data-sources/{own['id']}/sync", json={}, headers=headers).status_code == 404
    assert tenant.client.get("/data-sources", headers=headers).get_json()["items"] == []
    refused = post(
        tenant, {"connectionId": tenant.connection["id"], "collection": "contacts"}, token=other_token
    )
    assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "connectionId"
    assert (
        tenant.client.get(
            f"/data-sources/{own['id']}", headers=factories.auth_header(tenant.customer)
        ).status_code
        == 200
    )


def _secret_of(services, tenant) -> str:
    from engine.domain import tenancy

    return tenancy.workspace_with_secret(services, tenant.workspace.key)[1]


def test_deleting_a_connections_data_sources(services, tenant):
    from engine.datasources import service

    first = create_source(tenant)
    pull = create_source(tenant, kind="event-pull", pullUpdatesIntervalSeconds=30)
    assert (
        pull["kind"] == "event-pull"
        and pull["fullSyncIntervalSeconds"] is None
        and pull["nextFullAt"] is None
    )
    assert service.delete_for_connection(services, tenant.connection["id"]) == 2
    headers = factories.auth_header(tenant.admin)
    assert tenant.client.get(f"/data-sources/{first['id']}", headers=headers).status_code == 404


def test_deleting_a_connection_deletes_its_data_sources(tenant):
    # Given a connection with a data source
    source = create_source(tenant)
    headers = factories.auth_header(tenant.admin)
    assert tenant.client.get(f"/data-sources/{source['id']}", headers=headers).status_code == 200
    # When the customer deletes the connection
    response = tenant.client.delete(
        f"/connections/{tenant.connection['id']}", headers=factories.auth_header(tenant.customer)
    )
    # Then its data source is gone with it (no sync runs for a connection that no longer exists)
    assert response.status_code in (200, 204)
    assert tenant.client.get(f"/data-sources/{source['id']}", headers=headers).status_code == 404
