"""A flow end to end over real processes: API, queued worker, custom code runner, demo app.

    api-trigger -> run-action (demo: list contacts) -> for-each -> run-python (score)
                -> filter (score >= 50) -> http-request (POST the hot contacts to the demo app)

run for a customer through POST /flow-instances/{id}/run, and the same graph started by a
demo-app webhook (contact.updated -> POST /webhooks/demo/{connectionId}).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from engine.domain import tenancy
from tests.conftest import make_env
from tests.factories import create_workspace, customer_token, demo_connector_zip, workspace_token
from tests.integration.flows.conftest import scored_flow

pytestmark = pytest.mark.slow

DEMO_API_KEY = "demo-e2e-key-7QwPz"
RUN_TIMEOUT_SECONDS = 60.0
CONTACTS = [
    {"email": "ann@acme.com", "company": "Acme"},  # 40 + 30 = 70: hot
    {"email": "bob@home.org"},  # 0
    {"email": "cy@corp.org", "company": "Corp"},  # 40
    {"email": "dee@dee.com", "company": "Dee Inc"},  # 70: hot
]


@pytest.fixture
def demo_server():
    from demoapp import DemoState
    from demoapp import create_app as create_demo_app

    state = DemoState(api_keys=(DEMO_API_KEY,))
    app = create_demo_app(state, seed=1)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", state
    server.shutdown()
    app.extensions["demoapp"]["dispatcher"].stop()


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(response: requests.Response, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.text[:2000])
    return response.json() if response.content else None


def _wait_finished(api: str, token: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = _ok(requests.get(f"{api}/flow-runs/{run_id}", headers=_h(token), timeout=10), 200)
        if run["state"] in ("completed", "failed", "stopped"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish: {run}")


def _check_scored_run(
    api: str, token: str, run: dict[str, Any], expect_hot: list[str], expect_scores: dict[str, int]
) -> None:
    assert run["state"] == "completed", (run["error"], run["nodes"])
    statuses = {node["key"]: node["status"] for node in run["nodes"]}
    assert statuses == {
        "trigger": "completed",
        "list": "completed",
        "each": "completed",
        "score": "completed",
        "hot": "completed",
        "post": "completed",
    }, run["nodes"]
    nodes = {
        key: _ok(requests.get(f"{api}/flow-runs/{run['id']}/nodes/{key}", headers=_h(token), timeout=10), 200)
        for key in statuses
    }
    listed = nodes["list"]["outputs"][0]  # the connector maps the page to its records
    assert {c["email"] for c in listed} >= set(expect_scores)
    assert any("list-contacts" in line for line in nodes["list"]["logs"])
    assert len(nodes["each"]["outputs"]) == len(listed)
    assert nodes["score"]["invocations"] == len(listed)
    scores = {o["email"]: o["score"] for o in nodes["score"]["outputs"]}
    assert {email: scores[email] for email in expect_scores} == expect_scores
    assert any("scored" in line for line in nodes["score"]["logs"])  # print() of the custom code
    assert sorted(o["email"] for o in nodes["hot"]["outputs"]) == sorted(expect_hot)
    posted = nodes["post"]["outputs"]
    assert sorted(o["body"]["email"] for o in posted) == sorted(f"hot-{e}" for e in expect_hot)
    assert all(o["status"] == 201 for o in posted) and len(nodes["post"]["logs"]) == len(expect_hot)
    for node in nodes.values():
        assert node["startedAt"] and node["finishedAt"]


@dataclass
class Deployment:
    api: str
    worker: Any
    admin: str
    customer: str
    other_customer: str
    connection: dict[str, Any]


def _deploy(stack, test_id, start_engine, demo_url: str) -> Deployment:
    """Runner, API and queued worker processes; a workspace with the demo connector, an integration,
    a customer's connection to the demo app and the list-contacts action."""
    env = make_env(stack, test_id)
    runner = start_engine({**env, "CUSTOM_CODE_RUNNER_HOST": "127.0.0.1"}, "sandbox")
    common = {**env, "CUSTOM_CODE_RUNNER_URI": runner.url}
    api_proc = start_engine(common)
    worker = start_engine({**common, "IS_API": "0", "IS_QUEUED_TASKS_WORKER": "1"})
    for proc in (runner, api_proc, worker):
        proc.wait_healthy()
    api = api_proc.url

    from engine.config import load_config
    from engine.services import Services

    services = Services.from_config(load_config(env))
    try:
        tenancy.clear_caches()
        workspace, secret = create_workspace(services)
    finally:
        services.close()
    admin, customer = workspace_token(workspace, secret), customer_token(workspace, secret, "cust-e2e")
    _ok(
        requests.post(
            f"{api}/connectors",
            headers=_h(admin),
            timeout=30,
            files={"file": ("demo.zip", demo_connector_zip(), "application/zip")},
        ),
        201,
    )
    _ok(
        requests.post(
            f"{api}/integrations", headers=_h(admin), json={"key": "demo", "connectorKey": "demo"}, timeout=10
        ),
        201,
    )
    connection = _ok(
        requests.post(
            f"{api}/connections",
            headers=_h(customer),
            timeout=10,
            json={"integrationKey": "demo", "credentials": {"baseUrl": demo_url, "apiKey": DEMO_API_KEY}},
        ),
        201,
    )
    _ok(
        requests.post(
            f"{api}/actions",
            headers=_h(admin),
            timeout=10,
            json={
                "key": "list-contacts",
                "integrationKey": "demo",
                "operation": {"type": "connector", "name": "list-contacts"},
            },
        ),
        201,
    )
    return Deployment(
        api, worker, admin, customer, customer_token(workspace, secret, "someone-else"), connection
    )


def test_scored_flow_runs_from_the_api_and_from_a_demo_webhook(stack, test_id, start_engine, demo_server):
    demo_url, demo_state = demo_server
    deployment = _deploy(stack, test_id, start_engine, demo_url)
    api, admin, customer, connection = (
        deployment.api,
        deployment.admin,
        deployment.customer,
        deployment.connection,
    )
    worker = deployment.worker
    for contact in CONTACTS:
        _ok(
            requests.post(
                f"{demo_url}/contacts", headers={"X-Api-Key": DEMO_API_KEY}, json=contact, timeout=10
            ),
            201,
        )
    parameters = {"demoUrl": demo_url, "apiKey": DEMO_API_KEY}

    # When: the customer runs the api-trigger flow.
    _ok(
        requests.post(
            f"{api}/flows", headers=_h(admin), json=scored_flow("scored", {"type": "api-trigger"}), timeout=10
        ),
        201,
    )
    instance = _ok(
        requests.post(
            f"{api}/flow-instances",
            headers=_h(customer),
            timeout=10,
            json={"flowId": "scored", "connectionId": connection["id"], "parameters": parameters},
        ),
        201,
    )
    queued = _ok(
        requests.post(
            f"{api}/flow-instances/{instance['id']}/run",
            headers=_h(customer),
            json={"input": {"reason": "e2e"}},
            timeout=10,
        ),
        202,
    )
    assert queued["launchedBy"] == "api"

    # Then: it completes, and every node's outputs and logs are readable through the API.
    run = _wait_finished(api, customer, queued["id"])
    _check_scored_run(
        api,
        customer,
        run,
        ["ann@acme.com", "dee@dee.com"],
        {"ann@acme.com": 70, "bob@home.org": 0, "cy@corp.org": 40, "dee@dee.com": 70},
    )
    assert {c["email"] for c in demo_state.list_contacts(limit=100)[0]} >= {
        "hot-ann@acme.com",
        "hot-dee@dee.com",
    }
    # Another customer sees nothing of it.
    other = deployment.other_customer
    assert requests.get(f"{api}/flow-runs/{run['id']}", headers=_h(other), timeout=10).status_code == 404
    assert _ok(requests.get(f"{api}/flow-runs", headers=_h(other), timeout=10), 200)["items"] == []
    listed = _ok(
        requests.get(f"{api}/flow-runs?flowInstanceId={instance['id']}", headers=_h(customer), timeout=10),
        200,
    )
    assert [r["id"] for r in listed["items"]] == [run["id"]]

    # When: the same graph listens to the demo app's contact.updated webhooks, and a contact changes.
    trigger = {
        "type": "data-record-updated-trigger",
        "config": {"dataSource": "contacts", "webhookEvents": ["contact.updated"]},
    }
    _ok(
        requests.post(
            f"{api}/flows", headers=_h(admin), json=scored_flow("scored-hook", trigger), timeout=10
        ),
        201,
    )
    hook_instance = _ok(
        requests.post(
            f"{api}/flow-instances",
            headers=_h(customer),
            timeout=10,
            json={"flowId": "scored-hook", "connectionId": connection["id"], "parameters": parameters},
        ),
        201,
    )
    _ok(
        requests.post(
            f"{demo_url}/webhooks",
            headers={"X-Api-Key": DEMO_API_KEY},
            timeout=10,
            json={"url": f"{api}/webhooks/demo/{connection['id']}", "events": ["contact.updated"]},
        ),
        201,
    )
    bob = next(c for c in demo_state.list_contacts(limit=100)[0] if c["email"] == "bob@home.org")
    _ok(
        requests.patch(
            f"{demo_url}/contacts/{bob['id']}",
            headers={"X-Api-Key": DEMO_API_KEY},
            timeout=10,
            json={"email": "bob@home.com", "company": "Bob Co"},
        ),
        200,
    )

    # Then: a run of the webhook flow is queued by the event and completes; bob is now hot too.
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not items:
        items = _ok(
            requests.get(
                f"{api}/flow-runs?flowInstanceId={hook_instance['id']}", headers=_h(customer), timeout=10
            ),
            200,
        )["items"]
        time.sleep(0.2)
    assert len(items) == 1, worker.logs()[-3000:]
    hook_run = _wait_finished(api, customer, items[0]["id"])
    assert (
        hook_run["launchedBy"] == "external-event" and hook_run["input"]["record"]["email"] == "bob@home.com"
    )
    hot = ["ann@acme.com", "dee@dee.com", "bob@home.com", "hot-ann@acme.com", "hot-dee@dee.com"]
    _check_scored_run(api, customer, hook_run, hot, {"bob@home.com": 70, "cy@corp.org": 40})


SLOW_CODE = """
def fibo(n):
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)

def run(input, ctx):
    print("item", input)
    return {"item": input, "fibo": fibo(19)}
"""


def test_a_running_flow_run_stops_between_nodes(stack, test_id, start_engine, demo_server):
    demo_url, _ = demo_server
    deployment = _deploy(stack, test_id, start_engine, demo_url)
    api, admin, customer = deployment.api, deployment.admin, deployment.customer
    body = {
        "key": "slow",
        "trigger": {"type": "api-trigger"},
        "nodes": [
            {"key": "each", "type": "for-each", "config": {"items": "{{ input.items }}"}},
            {"key": "work", "type": "run-python", "config": {"code": SLOW_CODE}},
            {"key": "after", "type": "transform-data", "config": {"mapping": {"x": "{{ input.item }}"}}},
        ],
        "links": [
            {"from": "trigger", "to": "each"},
            {"from": "each", "to": "work"},
            {"from": "work", "to": "after"},
        ],
    }
    _ok(requests.post(f"{api}/flows", headers=_h(admin), json=body, timeout=10), 201)
    instance = _ok(
        requests.post(
            f"{api}/flow-instances",
            headers=_h(customer),
            timeout=10,
            json={"flowId": "slow", "connectionId": deployment.connection["id"]},
        ),
        201,
    )
    queued = _ok(
        requests.post(
            f"{api}/flow-instances/{instance['id']}/run",
            headers=_h(customer),
            timeout=10,
            json={"input": {"items": list(range(2000))}},
        ),
        202,
    )
    # Given: the run is inside its long node.
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        node = _ok(
            requests.get(f"{api}/flow-runs/{queued['id']}/nodes/work", headers=_h(customer), timeout=10), 200
        )
        if node["status"] == "running":
            break
        time.sleep(0.1)
    assert node["status"] == "running", node
    # When: the customer stops it.
    stop_sent = time.monotonic()
    _ok(requests.post(f"{api}/flow-runs/{queued['id']}/stop", headers=_h(customer), timeout=10), 202)
    # Then: it is stopped within seconds, between two invocations of the node; nothing ran after it.
    run = _wait_finished(api, customer, queued["id"])
    assert run["state"] == "stopped" and time.monotonic() - stop_sent < 10, run
    work = _ok(
        requests.get(f"{api}/flow-runs/{queued['id']}/nodes/work", headers=_h(customer), timeout=10), 200
    )
    assert work["status"] == "failed" and work["errors"][-1]["type"] == "stopped"
    assert 0 < work["invocations"] < 2000 and len(work["outputs"]) == work["invocations"]
    statuses = {n["key"]: n["status"] for n in run["nodes"]}
    assert "after" not in statuses
