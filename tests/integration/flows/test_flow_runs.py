"""Flow runs through the API with the flow-run handler executed in this process.

The queued worker's state machine (claim, lease, limits) is the job system's and is tested there
and in tests/e2e/test_flow_e2e.py; here the handler runs directly on the queued job, which is
what a worker does after its claim.
"""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from engine.flows.outputs import INLINE_OUTPUTS_MAX_BYTES, MAX_NODE_OUTPUT_BYTES
from engine.flows.runs import FlowRunError, run_flow_job
from engine.jobs.registry import JobContext
from engine.jobs.service import get_job
from tests.factories import auth_header
from tests.integration.flows.conftest import transform_flow


def _instance(client, tenant, connection, body, parameters=None) -> dict:
    response = client.post("/flows", headers=auth_header(tenant.admin), json=body)
    assert response.status_code == 201, response.get_json()
    response = client.post(
        "/flow-instances",
        headers=auth_header(tenant.customer),
        json={"flowId": body["key"], "connectionId": connection["id"], "parameters": parameters or {}},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _run(client, token, instance, run_input) -> dict:
    response = client.post(
        f"/flow-instances/{instance['id']}/run", headers=auth_header(token), json={"input": run_input}
    )
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def _execute(services, run_id: str):
    job = get_job(services, run_id)
    return run_flow_job(job, JobContext(services, job))


def test_a_run_is_queued_then_its_nodes_are_readable(client, services, tenant, connection):
    instance = _instance(client, tenant, connection, transform_flow(), {"team": "blue"})
    queued = _run(client, tenant.customer, instance, {"people": [{"name": "ann", "age": 30}, {"name": "bo"}]})
    assert (
        queued["state"] == "queued"
        and queued["launchedBy"] == "api"
        and queued["flowInstanceId"] == instance["id"]
    )

    summary = _execute(services, queued["id"])

    assert summary["nodes"] == {
        "trigger": "completed",
        "each": "completed",
        "shape": "completed",
        "adults": "completed",
    }
    run = client.get(f"/flow-runs/{queued['id']}", headers=auth_header(tenant.customer)).get_json()
    assert [n["key"] for n in run["nodes"]] == ["trigger", "each", "shape", "adults"]
    shape = client.get(
        f"/flow-runs/{queued['id']}/nodes/shape", headers=auth_header(tenant.customer)
    ).get_json()
    assert shape["invocations"] == 2 and shape["status"] == "completed"
    assert shape["outputs"] == [
        {"name": "ANN", "age": 30, "greeting": "Hello ann from blue"},
        {"name": "BO", "age": 0, "greeting": "Hello bo from blue"},
    ]
    adults = client.get(
        f"/flow-runs/{queued['id']}/nodes/adults", headers=auth_header(tenant.customer)
    ).get_json()
    assert [o["name"] for o in adults["outputs"]] == ["ANN"] and adults["logs"][-1].endswith("filtered out")
    assert (
        client.get(f"/flow-runs/{queued['id']}/nodes/ghost", headers=auth_header(tenant.customer)).get_json()[
            "status"
        ]
        == "pending"
    )


def test_run_input_is_checked_against_the_trigger_schema(client, tenant, connection):
    body = transform_flow("typed")
    body["trigger"]["config"] = {
        "inputSchema": {"type": "object", "required": ["people"], "properties": {"people": {"type": "array"}}}
    }
    instance = _instance(client, tenant, connection, body)
    response = client.post(
        f"/flow-instances/{instance['id']}/run",
        headers=auth_header(tenant.customer),
        json={"input": {"people": "nope"}},
    )
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "input.people"


def test_a_disabled_instance_does_not_run(client, tenant, connection):
    instance = _instance(client, tenant, connection, transform_flow("off"))
    client.post(f"/flow-instances/{instance['id']}/disable", headers=auth_header(tenant.admin))
    response = client.post(
        f"/flow-instances/{instance['id']}/run", headers=auth_header(tenant.customer), json={}
    )
    assert response.status_code == 409


def test_large_outputs_live_in_the_tmp_bucket_and_read_back(client, services, tenant, connection):
    instance = _instance(client, tenant, connection, transform_flow("large"), {"team": "t" * 100})
    people = [{"name": f"person-{i}-" + "x" * 80, "age": i} for i in range(2500)]
    queued = _run(client, tenant.customer, instance, {"people": people})
    _execute(services, queued["id"])
    stored = services.db.flow_node_runs.find_one({"_id": f"{queued['id']}:shape"})
    assert "outputsRef" in stored and stored["outputBytes"] > INLINE_OUTPUTS_MAX_BYTES
    node = client.get(
        f"/flow-runs/{queued['id']}/nodes/shape", headers=auth_header(tenant.customer)
    ).get_json()
    assert len(node["outputs"]) == 2500 and node["outputs"][7]["age"] == 7


@pytest.fixture
def huge_server():
    body = b'"' + b"x" * (MAX_NODE_OUTPUT_BYTES + 100) + b'"'

    def app(environ, start_response):
        return Response(body, mimetype="application/json")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_an_output_above_20_mb_fails_its_node_clearly(client, services, tenant, connection, huge_server):
    body = {
        "key": "huge",
        "trigger": {"type": "api-trigger"},
        "nodes": [{"key": "get", "type": "http-request", "config": {"url": huge_server + "/big"}}],
        "links": [{"from": "trigger", "to": "get"}],
    }
    instance = _instance(client, tenant, connection, body)
    queued = _run(client, tenant.customer, instance, {})
    with pytest.raises(FlowRunError) as caught:
        _execute(services, queued["id"])
    assert caught.value.type == "output_too_large" and "'get'" in caught.value.message
    node = client.get(f"/flow-runs/{queued['id']}/nodes/get", headers=auth_header(tenant.customer)).get_json()
    assert node["status"] == "failed" and node["errors"][0]["type"] == "output_too_large"


def test_http_request_against_the_demo_app_and_on_error_continue(client, services, tenant, connection, demo):
    from tests.integration.api.conftest import DEMO_API_KEY

    body = {
        "key": "http",
        "trigger": {"type": "api-trigger"},
        "nodes": [
            {"key": "each", "type": "for-each", "config": {"items": "{{ input.emails }}"}},
            {
                "key": "create",
                "type": "http-request",
                "onError": "continue",
                "config": {
                    "method": "POST",
                    "url": "{{ parameters.url }}/contacts",
                    "headers": {"X-Api-Key": "{{ parameters.key }}"},
                    "body": {"email": "{{ input }}"},
                },
            },
            {"key": "ids", "type": "transform-data", "config": {"mapping": {"id": "{{ input.body.id }}"}}},
        ],
        "links": [
            {"from": "trigger", "to": "each"},
            {"from": "each", "to": "create"},
            {"from": "create", "to": "ids"},
        ],
    }
    instance = _instance(client, tenant, connection, body, {"url": demo.url, "key": DEMO_API_KEY})
    queued = _run(client, tenant.customer, instance, {"emails": ["a@x.io", "not-an-email", "b@x.io"]})
    summary = _execute(services, queued["id"])
    assert summary["failedNodes"] == ["create"]
    node = client.get(
        f"/flow-runs/{queued['id']}/nodes/create", headers=auth_header(tenant.customer)
    ).get_json()
    assert [o["status"] for o in node["outputs"]] == [201, 201]
    assert node["errors"][0]["type"] == "http_status" and "422" in node["errors"][0]["message"]
    assert len(node["logs"]) == 3
    ids = client.get(f"/flow-runs/{queued['id']}/nodes/ids", headers=auth_header(tenant.customer)).get_json()
    assert len(ids["outputs"]) == 2 and all(o["id"] for o in ids["outputs"])


def test_runs_are_listed_filtered_and_scoped_to_the_customer(client, services, tenant, connection):
    instance = _instance(client, tenant, connection, transform_flow("listed"))
    first = _run(client, tenant.customer, instance, {"people": []})
    second = _run(client, tenant.admin, instance, {"people": []})
    _execute(services, first["id"])
    page = client.get(
        f"/flow-runs?flowInstanceId={instance['id']}&limit=1", headers=auth_header(tenant.customer)
    ).get_json()
    assert [r["id"] for r in page["items"]] == [second["id"]] and page["cursor"]
    rest = client.get(
        f"/flow-runs?flowInstanceId={instance['id']}&cursor={page['cursor']}",
        headers=auth_header(tenant.customer),
    ).get_json()
    assert [r["id"] for r in rest["items"]] == [first["id"]]
    queued = client.get("/flow-runs?state=queued", headers=auth_header(tenant.admin)).get_json()
    assert second["id"] in [r["id"] for r in queued["items"]]
    future = client.get("/flow-runs?from=2999-01-01T00:00:00Z", headers=auth_header(tenant.admin)).get_json()
    assert future["items"] == []
    bad = client.get("/flow-runs?from=yesterday", headers=auth_header(tenant.admin))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "from"
    other = tenant.token_of("other-customer")
    assert client.get("/flow-runs", headers=auth_header(other)).get_json()["items"] == []
    assert client.get(f"/flow-runs/{first['id']}", headers=auth_header(other)).status_code == 404
    assert client.get(f"/flow-runs/{first['id']}/nodes/each", headers=auth_header(other)).status_code == 404


def test_stopping_a_queued_run(client, services, tenant, connection):
    instance = _instance(client, tenant, connection, transform_flow("stop"))
    queued = _run(client, tenant.customer, instance, {"people": []})
    response = client.post(f"/flow-runs/{queued['id']}/stop", headers=auth_header(tenant.customer))
    assert response.status_code == 202 and response.get_json()["state"] == "stopped"
