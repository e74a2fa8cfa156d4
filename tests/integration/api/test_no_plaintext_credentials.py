"""A known credential must appear nowhere: not in MongoDB, not in logs, not in any API answer."""

from __future__ import annotations

import json
import logging

import pytest

from tests.factories import auth_header, create_action, create_integration, upload_demo_connector
from tests.integration.api.conftest import DEMO_API_KEY

PARAMETER_SECRET = "client-secret-Hh71Kd02Pq"


@pytest.fixture
def worker(engine_env, start_engine):
    proc = start_engine({**engine_env, "IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1", "DEBUG_ALL": "1"})
    proc.wait_healthy()
    return proc


def test_credentials_never_in_plaintext(client, services, tenant, demo, worker, caplog):
    caplog.set_level(logging.INFO)
    answers: list[str] = []

    def call(method: str, path: str, token: str, **kwargs):
        response = client.open(path, method=method, headers=auth_header(token), **kwargs)
        answers.append(response.get_data(as_text=True))
        return response

    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin, parameters={"clientId": "cid", "clientSecret": PARAMETER_SECRET})
    connect = call(
        "POST",
        "/connections",
        tenant.customer,
        json={"integrationKey": "demo", "credentials": {"baseUrl": demo.url, "apiKey": DEMO_API_KEY}},
    )
    connection_id = connect.get_json()["id"]
    call("POST", f"/connections/{connection_id}/test", tenant.customer)
    # An action that echoes the key in a header and the body: the log record must redact it.
    create_action(
        client,
        tenant.admin,
        "create",
        {
            "type": "http",
            "method": "POST",
            "path": "/contacts",
            "headers": {"X-Echo": "{{ connection.apiKey }}"},
            "body": {"email": "{{ input.email }}", "company": "{{ connection.apiKey }}"},
        },
    )
    create_action(client, tenant.admin, "missing", {"type": "connector", "name": "get-contact"})
    assert (
        call("POST", "/actions/create/run", tenant.customer, json={"input": {"email": "a@b.c"}}).status_code
        == 200
    )
    assert (
        call("POST", "/actions/missing/run", tenant.customer, json={"input": {"id": "nope"}}).status_code
        == 502
    )
    for path in (
        "/connections",
        f"/connections/{connection_id}",
        "/integrations",
        "/integrations/demo",
        "/action-runs",
        "/connectors/demo",
        "/actions",
    ):
        call("GET", path, tenant.admin)
    call("GET", "/action-runs", tenant.customer)
    call("GET", "/openapi.json", tenant.admin)
    # A failed reconnect whose validation error must not echo the key either.
    call(
        "POST",
        "/connections",
        tenant.customer,
        json={"integrationKey": "demo", "credentials": {"baseUrl": "nope", "apiKey": DEMO_API_KEY}},
    )

    stored = []
    for name in services.db.list_collection_names():
        stored += [json.dumps(d, default=str) for d in services.db[name].find()]
    assert stored, "nothing was stored: the test would prove nothing"
    assert any("action_runs" in n for n in services.db.list_collection_names())
    logs = caplog.text + worker.logs()
    assert "run " in worker.logs() or "succeeded" in worker.logs()
    for secret in (DEMO_API_KEY, PARAMETER_SECRET, tenant.secret):
        assert not [d for d in stored if secret in d], f"{secret} found in MongoDB"
        assert secret not in logs, f"{secret} found in logs"
    for secret in (DEMO_API_KEY, PARAMETER_SECRET):
        assert not [a for a in answers if secret in a], f"{secret} found in an API answer"
