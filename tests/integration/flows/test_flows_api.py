"""Flows and flow instances through the API (in-process app, real Mongo)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from tests.factories import auth_header
from tests.integration.flows.conftest import light_flow, transform_flow


def test_create_get_list_update_delete_a_flow(client, tenant):
    created = client.post("/flows", headers=auth_header(tenant.admin), json=transform_flow("f1"))
    assert created.status_code == 201, created.get_json()
    flow = created.get_json()
    assert flow["key"] == "f1" and flow["trigger"]["key"] == "trigger" and len(flow["nodes"]) == 3
    assert (
        client.get(f"/flows/{flow['id']}", headers=auth_header(tenant.admin)).get_json()["id"] == flow["id"]
    )
    assert client.get("/flows/f1", headers=auth_header(tenant.admin)).get_json()["id"] == flow["id"]
    client.post("/flows", headers=auth_header(tenant.admin), json=light_flow("f2"))
    page = client.get("/flows?limit=1", headers=auth_header(tenant.admin)).get_json()
    assert len(page["items"]) == 1 and page["cursor"]
    second = client.get(
        f"/flows?limit=1&cursor={page['cursor']}", headers=auth_header(tenant.admin)
    ).get_json()
    assert [f["key"] for f in page["items"] + second["items"]] == ["f1", "f2"]

    body = transform_flow("f1")
    body["nodes"][2]["config"]["conditions"][0]["to"] = 21
    updated = client.put(f"/flows/{flow['id']}", headers=auth_header(tenant.admin), json=body)
    assert updated.status_code == 200 and updated.get_json()["version"] == 2
    assert client.delete(f"/flows/{flow['id']}", headers=auth_header(tenant.admin)).status_code == 204
    assert client.get(f"/flows/{flow['id']}", headers=auth_header(tenant.admin)).status_code == 404


def test_invalid_definition_is_400_naming_node_and_field_and_nothing_is_stored(client, services, tenant):
    body = transform_flow("bad")
    body["nodes"][1]["config"]["mapping"]["name"] = "{{ input.name | shout }}"
    response = client.post("/flows", headers=auth_header(tenant.admin), json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "'shape'" in error["message"] and error["field"] == "nodes[1].config.mapping.name"
    cyclic = transform_flow("cyclic")
    cyclic["links"].append({"from": "adults", "to": "each"})
    assert client.post("/flows", headers=auth_header(tenant.admin), json=cyclic).status_code == 400
    assert services.db.flows.count_documents({}) == 0


def test_an_invalid_update_keeps_the_stored_flow(client, tenant):
    flow = client.post("/flows", headers=auth_header(tenant.admin), json=transform_flow("keep")).get_json()
    body = transform_flow("keep")
    body["links"].append({"from": "adults", "to": "ghost"})
    response = client.put(f"/flows/{flow['id']}", headers=auth_header(tenant.admin), json=body)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "links[3].to"
    assert client.get(f"/flows/{flow['id']}", headers=auth_header(tenant.admin)).get_json()["version"] == 1


def test_customers_cannot_define_flows(client, tenant):
    response = client.post("/flows", headers=auth_header(tenant.customer), json=light_flow())
    assert response.status_code == 403


def test_duplicate_flow_key_is_409(client, tenant):
    assert (
        client.post("/flows", headers=auth_header(tenant.admin), json=light_flow("same")).status_code == 201
    )
    assert (
        client.post("/flows", headers=auth_header(tenant.admin), json=light_flow("same")).status_code == 409
    )


def test_instances_enable_disable_and_customer_scope(client, services, tenant, connection):
    flow = client.post("/flows", headers=auth_header(tenant.admin), json=transform_flow("inst")).get_json()
    response = client.post(
        "/flow-instances",
        headers=auth_header(tenant.customer),
        json={"flowId": "inst", "connectionId": connection["id"], "parameters": {"team": "A"}},
    )
    assert response.status_code == 201, response.get_json()
    instance = response.get_json()
    assert (
        instance["flowId"] == flow["id"] and instance["enabled"] and instance["triggerType"] == "api-trigger"
    )
    again = client.post(
        "/flow-instances",
        headers=auth_header(tenant.admin),
        json={"flowId": flow["id"], "connectionId": connection["id"]},
    )
    assert again.status_code == 409

    disabled = client.post(f"/flow-instances/{instance['id']}/disable", headers=auth_header(tenant.customer))
    assert disabled.status_code == 200 and disabled.get_json()["enabled"] is False
    other = tenant.token_of("someone-else")
    assert client.get(f"/flow-instances/{instance['id']}", headers=auth_header(other)).status_code == 404
    assert client.get("/flow-instances", headers=auth_header(other)).get_json()["items"] == []
    assert len(client.get("/flow-instances", headers=auth_header(tenant.admin)).get_json()["items"]) == 1
    foreign = client.post(
        "/flow-instances",
        headers=auth_header(other),
        json={"flowId": flow["id"], "connectionId": connection["id"]},
    )
    assert foreign.status_code == 404 and foreign.get_json()["error"]["field"] == "connectionId"


def test_schedule_instances_carry_their_schedule_for_the_orchestrator(client, services, tenant, connection):
    body = copy.deepcopy(light_flow("sched"))
    body["trigger"] = {
        "type": "schedule-trigger",
        "config": {"cron": "*/5 * * * *", "timezone": "Europe/Paris"},
    }
    client.post("/flows", headers=auth_header(tenant.admin), json=body)
    instance = client.post(
        "/flow-instances",
        headers=auth_header(tenant.admin),
        json={"flowId": "sched", "connectionId": connection["id"]},
    ).get_json()
    assert instance["schedule"] == {"cron": "*/5 * * * *", "timezone": "Europe/Paris", "overlap": "skip"}
    next_run = datetime.fromisoformat(instance["nextRunAt"].replace("Z", "+00:00"))
    assert next_run > datetime.now(UTC) and next_run.minute % 5 == 0
    stored = services.db.flow_instances.find_one({"_id": instance["id"]})
    assert stored["triggerType"] == "schedule-trigger" and stored["enabled"] is True
    client.post(f"/flow-instances/{instance['id']}/disable", headers=auth_header(tenant.admin))
    assert services.db.flow_instances.find_one({"_id": instance["id"]})["nextRunAt"] is None
