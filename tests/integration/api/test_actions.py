"""Actions run as instant tasks by a real Celery worker, against the real demo app."""

from __future__ import annotations

import pytest

from tests.factories import (
    auth_header,
    create_action,
    create_connection,
    create_integration,
    upload_demo_connector,
)
from tests.integration.api.conftest import DEMO_API_KEY


@pytest.fixture
def worker(engine_env, start_engine):
    proc = start_engine({**engine_env, "IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1"})
    proc.wait_healthy()
    return proc


@pytest.fixture
def connected(client, tenant, demo):
    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin)
    return create_connection(client, tenant.customer, {"baseUrl": demo.url, "apiKey": DEMO_API_KEY})


CREATE_CONTACT = {
    "type": "http",
    "method": "POST",
    "path": "/contacts",
    "body": {"email": "{{ input.email }}", "first_name": "{{ input.name | default }}"},
}
EMAIL_SCHEMA = {
    "type": "object",
    "required": ["email"],
    "properties": {"email": {"type": "string"}, "name": {"type": "string"}},
}


def test_declarative_action_runs_and_answers(client, services, tenant, connected, worker, demo):
    create_action(client, tenant.admin, "create-contact", CREATE_CONTACT, input_schema=EMAIL_SCHEMA)
    response = client.post(
        "/actions/create-contact/run",
        headers=auth_header(tenant.customer),
        json={"input": {"email": "ada@example.com", "name": "Ada"}},
    )
    assert response.status_code == 200, response.get_json()
    run = response.get_json()
    assert run["state"] == "completed" and run["output"]["email"] == "ada@example.com"
    assert run["request"]["headers"]["X-Api-Key"] != DEMO_API_KEY
    polled = client.get(f"/action-runs/{run['id']}", headers=auth_header(tenant.customer)).get_json()
    assert polled["state"] == "completed" and polled["durationMs"] >= 0
    # Another customer cannot read the run.
    assert (
        client.get(f"/action-runs/{run['id']}", headers=auth_header(tenant.token_of("x"))).status_code == 404
    )


def test_connector_operation_and_app_error(client, tenant, connected, worker):
    create_action(
        client,
        tenant.admin,
        "get-contact",
        {"type": "connector", "name": "get-contact"},
        input_schema={"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
    )
    response = client.post(
        "/actions/get-contact/run",
        headers=auth_header(tenant.customer),
        json={"input": {"id": "does-not-exist"}},
    )
    assert response.status_code == 502, response.get_json()
    error = response.get_json()["error"]
    assert error["appStatus"] == 404 and "404" in error["message"] and error["actionRunId"]


def test_input_is_checked_before_anything_is_stored(client, services, tenant, connected):
    create_action(client, tenant.admin, "create-contact", CREATE_CONTACT, input_schema=EMAIL_SCHEMA)
    response = client.post(
        "/actions/create-contact/run",
        headers=auth_header(tenant.customer),
        json={"input": {"name": "no email"}},
    )
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "input.email"
    assert services.db.action_runs.count_documents({}) == 0


def test_admin_names_the_connection_and_202_when_no_worker(client, services, tenant, connected):
    create_action(client, tenant.admin, "echo", {"type": "transform", "output": {"hello": "{{ input.who }}"}})
    missing = client.post(
        "/actions/create-contact/run", headers=auth_header(tenant.admin), json={"input": {}}
    )
    assert missing.status_code == 404
    response = client.post(
        "/actions/echo/run?waitSeconds=0",
        headers=auth_header(tenant.admin),
        json={"input": {"who": "x"}, "connectionId": connected["id"]},
    )
    assert response.status_code == 202 and response.get_json()["state"] == "queued"
    assert services.db.action_runs.count_documents({"state": "queued"}) == 1


def test_transform_action_and_redis_erased(client, services, tenant, connected, worker):
    create_action(client, tenant.admin, "echo", {"type": "transform", "output": {"hello": "{{ input.who }}"}})
    response = client.post(
        "/actions/echo/run", headers=auth_header(tenant.customer), json={"input": {"who": "y"}}
    )
    assert response.status_code == 200 and response.get_json()["output"] == {"hello": "y"}


def test_run_whose_message_was_lost_is_recovered_from_mongo(
    client, services, tenant, connected, engine_env, start_engine
):
    from engine.domain import action_runs

    create_action(client, tenant.admin, "echo", {"type": "transform", "output": {"hello": "{{ input.who }}"}})
    # Given a run queued while no worker runs, whose message is then lost with Redis
    response = client.post(
        "/actions/echo/run?waitSeconds=0", headers=auth_header(tenant.customer), json={"input": {"who": "z"}}
    )
    run_id = response.get_json()["id"]
    services.redis.flushdb()
    worker = start_engine({**engine_env, "IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1"})
    worker.wait_healthy()
    # When the recovery sweep runs
    assert action_runs.requeue_stale_runs(services, older_than_seconds=0) == 1
    # Then the run completes from what MongoDB kept
    run = action_runs.wait_for_run(services, run_id, 15)
    assert run.state is action_runs.RunState.COMPLETED and run.output == {"hello": "z"} and run.attempts == 1


def test_a_run_too_large_for_its_message_is_recorded_first_and_its_message_carries_the_id(
    client, services, tenant, connected, engine_env, start_engine
):
    import base64
    import json

    from engine.domain import action_runs

    create_action(client, tenant.admin, "echo", {"type": "transform", "output": {"hello": "{{ input.who }}"}})
    # Given an input larger than a message may carry
    big = {"who": "w", "pad": "x" * (action_runs.MAX_MESSAGE_BYTES + 1)}
    # When it is run while no worker runs
    response = client.post(
        "/actions/echo/run?waitSeconds=0", headers=auth_header(tenant.customer), json={"input": big}
    )
    assert response.status_code == 202
    run_id = response.get_json()["id"]
    # Then the queued message carries the run's id only, and MongoDB has the whole run
    (message,) = services.broker.lrange("instant", 0, -1)
    assert len(message) < 4096
    args, kwargs, _ = json.loads(base64.b64decode(json.loads(message)["body"]))
    assert args == [run_id] and kwargs == {}
    assert services.db.action_runs.find_one({"_id": run_id})["input"]["pad"] == big["pad"]
    # And a worker runs it from MongoDB
    worker = start_engine({**engine_env, "IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1"})
    worker.wait_healthy()
    run = action_runs.wait_for_run(services, run_id, 15)
    assert run.state is action_runs.RunState.COMPLETED and run.output == {"hello": "w"}
