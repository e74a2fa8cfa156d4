"""External events: webhooks, app events and data-record events start the subscribed flows.

The external-event and flow-run handlers run in this process on the queued jobs (what a queued
worker does after its claim); tests/e2e/test_flow_e2e.py covers the same path across processes.
"""

from __future__ import annotations

from engine.flows.events import MAX_EVENT_BYTES, emit_data_record_event, process_event_job
from engine.jobs.registry import JobContext
from engine.jobs.service import get_job, list_jobs
from tests.factories import auth_header
from tests.integration.flows.conftest import transform_flow


def _flow_with_trigger(key: str, trigger: dict) -> dict:
    body = transform_flow(key)
    body["trigger"] = trigger
    body["nodes"][0]["config"]["items"] = "{{ input.record.people | default([]) }}"
    return body


def _enable(client, tenant, connection, body) -> dict:
    assert client.post("/flows", headers=auth_header(tenant.admin), json=body).status_code == 201
    response = client.post(
        "/flow-instances",
        headers=auth_header(tenant.admin),
        json={"flowId": body["key"], "connectionId": connection["id"]},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _process(services, event_id: str) -> list[str]:
    event = services.db.events.find_one({"_id": event_id})
    job = get_job(services, event["jobId"])
    assert job.kind == "external-event"
    return process_event_job(job, JobContext(services, job))["runs"]


def _runs(services, tenant, instance_id: str):
    jobs, _ = list_jobs(
        services,
        workspace_id=tenant.workspace.id,
        kind="flow-run",
        payload_filter={"flowInstanceId": instance_id},
    )
    return jobs


def test_a_webhook_is_stored_then_starts_matching_instances_once(client, services, tenant, connection):
    trigger = {
        "type": "data-record-updated-trigger",
        "config": {"dataSource": "contacts", "webhookEvents": ["contact.updated"]},
    }
    hooked = _enable(client, tenant, connection, _flow_with_trigger("hooked", trigger))
    other = _enable(
        client,
        tenant,
        connection,
        _flow_with_trigger(
            "other", {**trigger, "config": {"dataSource": "contacts", "webhookEvents": ["contact.deleted"]}}
        ),
    )

    response = client.post(
        f"/webhooks/demo/{connection['id']}",
        json={
            "id": "e1",
            "type": "contact.updated",
            "data": {"id": "c1", "people": [{"name": "z", "age": 40}]},
        },
    )

    assert response.status_code == 202
    event = response.get_json()
    assert event["state"] == "received" and event["eventType"] == "contact.updated"
    run_ids = _process(services, event["id"])
    assert len(run_ids) == 1 and _runs(services, tenant, other["id"]) == []
    run = get_job(services, run_ids[0])
    assert run.launched_by == "external-event" and run.payload["flowInstanceId"] == hooked["id"]
    assert run.payload["input"]["record"]["id"] == "c1" and run.payload["input"]["change"] == "updated"
    # A retried event job queues nothing twice.
    assert _process(services, event["id"]) == run_ids
    assert len(_runs(services, tenant, hooked["id"])) == 1
    assert services.db.events.find_one({"_id": event["id"]})["state"] == "processed"


def test_the_event_type_may_come_from_a_header(client, services, tenant, connection):
    trigger = {
        "type": "data-record-created-trigger",
        "config": {"dataSource": "contacts", "webhookEvents": ["contact.created"]},
    }
    instance = _enable(client, tenant, connection, _flow_with_trigger("hdr", trigger))
    response = client.post(
        f"/webhooks/demo/{connection['id']}",
        json={"data": {"id": "c2"}},
        headers={"X-Demo-Event": "contact.created"},
    )
    assert response.status_code == 202
    assert len(_process(services, response.get_json()["id"])) == 1
    assert len(_runs(services, tenant, instance["id"])) == 1


def test_malformed_too_large_or_unknown_webhooks_are_refused_and_nothing_is_queued(
    client, services, connection
):
    url = f"/webhooks/demo/{connection['id']}"
    assert client.post(url, data=b"{nope", content_type="application/json").status_code == 400
    assert client.post(url, json=[1, 2]).status_code == 400
    assert client.post(url, json={"no": "type"}).status_code == 400
    big = b'{"type": "x", "pad": "' + b"x" * MAX_EVENT_BYTES + b'"}'
    assert client.post(url, data=big, content_type="application/json").status_code == 413
    assert (
        client.post("/webhooks/other-integration/" + connection["id"], json={"type": "x"}).status_code == 404
    )
    assert client.post("/webhooks/demo/con_missing", json={"type": "x"}).status_code == 404
    assert services.db.events.count_documents({}) == 0
    assert services.db.jobs.count_documents({}) == 0


def test_app_events_start_the_workspaces_app_event_flows(client, services, tenant, connection):
    trigger = {"type": "app-event-trigger", "config": {"eventType": "invoice-paid"}}
    body = transform_flow("paid")
    body["trigger"] = trigger
    instance = _enable(client, tenant, connection, body)
    assert client.post("/app-events/invoice-paid", json={"people": []}).status_code == 401

    response = client.post(
        "/app-events/invoice-paid",
        headers=auth_header(tenant.customer),
        json={"people": [{"name": "x", "age": 20}]},
    )

    assert response.status_code == 202
    [run_id] = _process(services, response.get_json()["id"])
    run = get_job(services, run_id)
    assert run.launched_by == "app-event" and run.payload["input"] == {"people": [{"name": "x", "age": 20}]}
    # Another customer's app event does not reach this customer's instance; the workspace's does.
    foreign = client.post("/app-events/invoice-paid", headers=auth_header(tenant.token_of("c-2")), json={})
    assert _process(services, foreign.get_json()["id"]) == []
    workspace_wide = client.post("/app-events/invoice-paid", headers=auth_header(tenant.admin), json={})
    assert len(_process(services, workspace_wide.get_json()["id"])) == 1
    assert len(_runs(services, tenant, instance["id"])) == 2


def test_data_record_events_from_syncs(client, services, tenant, connection):
    created = _enable(
        client,
        tenant,
        connection,
        _flow_with_trigger(
            "on-create", {"type": "data-record-created-trigger", "config": {"dataSource": "contacts"}}
        ),
    )
    deleted = _enable(
        client,
        tenant,
        connection,
        _flow_with_trigger(
            "on-delete", {"type": "data-record-deleted-trigger", "config": {"dataSource": "contacts"}}
        ),
    )

    event = emit_data_record_event(
        services,
        connection_id=connection["id"],
        data_source_id="ds_1",
        data_source_key="contacts",
        change="created",
        record={"id": "r1"},
    )

    [run_id] = _process(services, event["_id"])
    run = get_job(services, run_id)
    assert run.launched_by == "data-source" and run.payload["flowInstanceId"] == created["id"]
    assert run.payload["input"] == {"change": "created", "dataSourceId": "ds_1", "record": {"id": "r1"}}
    assert _runs(services, tenant, deleted["id"]) == []
    # A change nothing listens to stores and queues nothing.
    assert (
        emit_data_record_event(
            services,
            connection_id=connection["id"],
            data_source_id="ds_1",
            change="updated",
            record={"id": "r1"},
        )
        is None
    )
    assert services.db.events.count_documents({}) == 1
