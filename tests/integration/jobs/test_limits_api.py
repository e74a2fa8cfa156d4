"""/limits routes and the API rate limits."""

from __future__ import annotations

import dataclasses

import pytest

from engine.app import create_app
from tests.factories import (
    admin_token,
    auth_header,
    create_customer,
    create_workspace,
    customer_token,
    workspace_token,
)


@pytest.fixture
def setup(services, config):
    workspace, secret = create_workspace(services)
    return create_app(config, services).test_client(), workspace, secret


def test_platform_admin_reads_and_sets_workspace_limits(services, setup):
    client, workspace, secret = setup
    headers = auth_header(admin_token(services))
    body = client.get(f"/limits/workspaces/{workspace.key}", headers=headers).get_json()
    assert body["limits"]["parallelFlowRunsPerConnection"] == 1
    assert body["limits"]["queuedTasksQueueSize"] == 100_000
    response = client.put(
        f"/limits/workspaces/{workspace.key}", headers=headers, json={"parallelFlowRuns": 3}
    )
    assert response.status_code == 200
    assert response.get_json()["limits"]["parallelFlowRuns"] == 3
    # a workspace admin may not
    admin = auth_header(workspace_token(workspace, secret))
    assert client.put(f"/limits/workspaces/{workspace.key}", headers=admin, json={}).status_code == 403


@pytest.mark.parametrize(
    "body,field",
    [
        ({"parallelFlowRuns": -1}, "parallelFlowRuns"),
        ({"parallelFlowRuns": "3"}, "parallelFlowRuns"),
        ({"parallelFlowRuns": 1.5}, "parallelFlowRuns"),
        ({"noSuchLimit": 1}, "noSuchLimit"),
    ],
)
def test_invalid_workspace_limits_are_400_naming_the_limit(services, setup, body, field):
    client, workspace, _ = setup
    response = client.put(
        f"/limits/workspaces/{workspace.key}", headers=auth_header(admin_token(services)), json=body
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


def test_workspace_admin_sets_only_per_customer_limits(services, setup):
    client, workspace, secret = setup
    customer = create_customer(services, workspace, "cust-1")
    admin = auth_header(workspace_token(workspace, secret))
    response = client.put(
        f"/limits/customers/{customer.id}", headers=admin, json={"parallelFlowRunsPerConnection": 4}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["limits"]["parallelFlowRunsPerConnection"] == 4
    assert client.get("/limits/customers/cust-1", headers=admin).get_json()["overrides"] == {
        "parallelFlowRunsPerConnection": 4
    }
    refused = client.put(f"/limits/customers/{customer.id}", headers=admin, json={"parallelFlowRuns": 4})
    assert refused.status_code == 400 and refused.get_json()["error"]["field"] == "parallelFlowRuns"


def test_customer_rate_limit_is_429_with_retry_after(services, config):
    config = dataclasses.replace(config, enable_limits=True)
    services = dataclasses.replace(services, config=config)
    workspace, secret = create_workspace(services)
    client = create_app(config, services).test_client()
    customer = create_customer(services, workspace, "busy")
    client.put(
        f"/limits/customers/{customer.id}",
        headers=auth_header(workspace_token(workspace, secret)),
        json={"apiRequestsPerCustomerPerSecond": 3},
    )
    headers = auth_header(customer_token(workspace, secret, "busy"))
    statuses = [client.get("/limits/customers/busy", headers=headers) for _ in range(6)]
    limited = [r for r in statuses if r.status_code == 429]
    assert len(limited) >= 2
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].get_json()["error"]["field"] == "apiRequestsPerCustomerPerSecond"
    # another customer of the workspace is not limited
    other = auth_header(customer_token(workspace, secret, "quiet"))
    assert client.get("/limits/customers/quiet", headers=other).status_code != 429


def test_instant_queue_size_is_429_beyond_the_limit(services):
    from engine.errors import TooManyRequests
    from engine.limits.rate import check_instant_queue_size
    from engine.store import limits as limits_store

    limits_store.put(services.db, "ws:ws1", {"instantTasksQueueSize": 3})
    # A count this process read with another clock (here the real one) is never taken as fresh.
    check_instant_queue_size(services, "ws1")
    # Given 2 instant tasks waiting in the broker (no instant worker runs here)
    from engine.broker import INSTANT_QUEUE, publish
    from engine.domain.action_runs import RUN_ACTION_TASK

    for i in range(2):
        publish(services.broker, RUN_ACTION_TASK, INSTANT_QUEUE, [f"r{i}"])
    seconds = iter([100.0, 100.5, 101.5]).__next__
    check_instant_queue_size(services, "ws1", clock=seconds)
    publish(services.broker, RUN_ACTION_TASK, INSTANT_QUEUE, ["r3"])
    from engine.limits.service import clear_cache

    clear_cache()
    # Within the same second the process reuses its count (a safety limit, off the hot path)...
    check_instant_queue_size(services, "ws1", clock=seconds)
    # ...and counts again after it.
    with pytest.raises(TooManyRequests) as error:
        check_instant_queue_size(services, "ws1", clock=seconds)
    assert error.value.field == "instantTasksQueueSize"


def test_an_unreachable_store_is_a_503_to_retry_not_an_internal_error(services, engine_env):
    # Given an API whose Redis (the rate limits' store) cannot be reached
    from engine.config import load_config
    from engine.dev.servers import free_port
    from engine.services import Services

    config = load_config(
        {**engine_env, "ENABLE_LIMITS": "1", "REDIS_URI": f"redis://127.0.0.1:{free_port()}/0"}
    )
    unreachable = Services.from_config(config)
    workspace, secret = create_workspace(services)
    client = create_app(config, unreachable).test_client()
    # When a workspace admin calls it
    response = client.get("/actions", headers=auth_header(workspace_token(workspace, secret)))
    # Then it answers 503 naming the store, with a Retry-After
    assert response.status_code == 503
    assert response.get_json()["error"] == {
        "type": "unavailable",
        "message": "redis is unavailable: retry later",
    }
    assert int(response.headers["Retry-After"]) > 0
    unreachable.close()
