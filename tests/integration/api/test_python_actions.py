"""Python operations run by the custom code runner (never in the worker), with ctx.http on the app."""

from __future__ import annotations

import pytest

from engine.dev.servers import free_port
from tests.factories import (
    auth_header,
    create_action,
    create_connection,
    create_integration,
    upload_demo_connector,
)
from tests.integration.api.conftest import DEMO_API_KEY


@pytest.fixture
def worker_with_runner(engine_env, start_engine):
    port = free_port()
    runner = start_engine({**engine_env, "CUSTOM_CODE_RUNNER_HOST": "127.0.0.1"}, "sandbox", port=port)
    runner.wait_healthy()
    worker = start_engine(
        {
            **engine_env,
            "IS_API": "0",
            "IS_INSTANT_TASKS_WORKER": "1",
            "CUSTOM_CODE_RUNNER_URI": f"http://127.0.0.1:{port}",
        }
    )
    worker.wait_healthy()
    return worker


def test_connector_python_operation_and_inline_code(client, tenant, demo, worker_with_runner):
    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin)
    create_connection(client, tenant.customer, {"baseUrl": demo.url, "apiKey": DEMO_API_KEY})
    create_action(client, tenant.admin, "create", {"type": "connector", "name": "create-contact"})
    contact = client.post(
        "/actions/create/run",
        headers=auth_header(tenant.customer),
        json={"input": {"email": "ada@acme.test", "firstName": "Ada", "lastName": "L", "company": "Acme"}},
    ).get_json()["output"]
    create_action(client, tenant.admin, "score", {"type": "connector", "name": "score-contact"})
    response = client.post(
        "/actions/score/run", headers=auth_header(tenant.customer), json={"input": {"id": contact["id"]}}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["output"] == {"id": contact["id"], "score": 90}
    assert "scored" in response.get_json()["logs"]
    # Inline code that fails: a clear 422 naming the line, not an engine error.
    create_action(
        client, tenant.admin, "boom", {"type": "python", "code": "def run(input, ctx):\n    return 1 / 0\n"}
    )
    response = client.post("/actions/boom/run", headers=auth_header(tenant.customer), json={"input": {}})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["type"] == "custom_code_error"
