"""The README's "## Tour", step by step, against real engine processes and the demo app.

Same commands as the README (curl there, requests here), same answers checked: workspace,
connector upload, integration, customer connection, connection test, action definition and run.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from engine.dev.servers import free_port
from examples.connectors.build import build_demo_connector_zip
from tests.conftest import REPO_ROOT


def _engine_token(env: dict[str, str], *args: str) -> str:
    import os

    result = subprocess.run(
        [sys.executable, "-m", "engine", "token", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def demo_app():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "demoapp", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


def test_tour(engine_env, start_engine, demo_app):
    api = start_engine(engine_env)
    worker = start_engine({**engine_env, "IS_API": "0", "IS_INSTANT_TASKS_WORKER": "1"})
    api.wait_healthy()
    worker.wait_healthy()
    base = api.url

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    # 1. The platform admin creates a workspace.
    admin = _engine_token(engine_env, "--admin")
    response = requests.post(
        f"{base}/workspaces", headers=bearer(admin), json={"key": "acme", "name": "Acme"}
    )
    assert response.status_code == 201
    assert response.json()["key"] == "acme" and response.json()["secret"]

    # 2. The workspace uploads the demo connector.
    workspace = _engine_token(engine_env, "--workspace", "acme")
    response = requests.post(
        f"{base}/connectors",
        headers=bearer(workspace),
        files={"file": ("demo.zip", build_demo_connector_zip())},
    )
    assert response.status_code == 201
    assert response.json()["key"] == "demo" and response.json()["currentVersion"] == "1.0.0"

    # 3. ... and creates an integration with it.
    response = requests.post(
        f"{base}/integrations", headers=bearer(workspace), json={"key": "demo", "connectorKey": "demo"}
    )
    assert response.status_code == 201 and response.json()["connectorKey"] == "demo"

    # 4. A customer connects their demo-app account and tests the connection.
    customer = _engine_token(engine_env, "--workspace", "acme", "--customer", "alice")
    response = requests.post(
        f"{base}/connections",
        headers=bearer(customer),
        json={"integrationKey": "demo", "credentials": {"baseUrl": demo_app, "apiKey": "demo-key"}},
    )
    assert response.status_code == 201
    connection = response.json()
    assert connection["state"] == "READY" and "credentials" not in connection
    response = requests.post(f"{base}/connections/{connection['id']}/test", headers=bearer(customer))
    assert response.json()["ok"] is True

    # 5. The workspace defines an action.
    response = requests.post(
        f"{base}/actions",
        headers=bearer(workspace),
        json={
            "key": "create-contact",
            "integrationKey": "demo",
            "operation": {"type": "connector", "name": "create-contact"},
            "inputSchema": {
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string"}, "firstName": {"type": "string"}},
            },
        },
    )
    assert response.status_code == 201

    # 6. ... and runs it for the customer.
    response = requests.post(
        f"{base}/actions/create-contact/run",
        headers=bearer(customer),
        json={"input": {"email": "ada@example.com", "firstName": "Ada"}},
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["state"] == "completed"
    assert run["output"]["email"] == "ada@example.com" and run["output"]["first_name"] == "Ada"

    # 7. Bad input names the field; the run's log record can be read back.
    response = requests.post(
        f"{base}/actions/create-contact/run", headers=bearer(customer), json={"input": {"firstName": "Ada"}}
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "input.email"
    response = requests.get(f"{base}/action-runs/{run['id']}", headers=bearer(customer))
    assert response.json()["state"] == "completed" and response.json()["response"]["status"] == 201
