"""OAuth2 connections: authorization code, then refresh persisted without losing the refresh token."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from werkzeug.serving import make_server

from engine import crypto
from tests.factories import auth_header, create_integration, upload_demo_connector

CLIENT_SECRET = "demo-secret-Wq02Lm"


@pytest.fixture
def oauth_demo():
    from demoapp import DemoState
    from demoapp import create_app as create_demo_app

    # Access tokens live 1 s, below the connector's 30 s refresh margin: every call refreshes.
    state = DemoState(oauth_clients={"demo-client": CLIENT_SECRET}, access_token_ttl_seconds=1)
    app = create_demo_app(state, seed=1)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _credentials(services, connection_id: str) -> dict:
    document = services.db.connections.find_one({"_id": connection_id})
    return crypto.decrypt_json(services.config.encryption_secret, document["credentials"], aad=connection_id)


def test_authorize_exchange_and_refresh(client, services, tenant, oauth_demo):
    upload_demo_connector(client, tenant.admin, "demo-oauth2")
    create_integration(
        client,
        tenant.admin,
        key="crm",
        connector_key="demo-oauth2",
        parameters={"clientId": "demo-client", "clientSecret": CLIENT_SECRET},
    )
    # Given a customer who starts connecting
    response = client.post(
        "/connections",
        headers=auth_header(tenant.customer),
        json={"integrationKey": "crm", "credentials": {"baseUrl": oauth_demo}},
    )
    assert response.status_code == 201
    connection = response.get_json()
    assert connection["state"] == "DISCONNECTED" and connection["authorizationUrl"].startswith(oauth_demo)
    # When the app redirects back with a code
    approval = requests.get(connection["authorizationUrl"], allow_redirects=False, timeout=10)
    location = urlsplit(approval.headers["Location"])
    assert location.path == "/connections/oauth2/callback"
    callback = client.get(f"{location.path}?{location.query}")
    # Then the connection is ready and holds both tokens (encrypted)
    assert callback.status_code == 200 and callback.get_json()["state"] == "READY"
    first = _credentials(services, connection["id"])
    assert first["accessToken"] and first["refreshToken"]
    # When the access token is near expiry and the connection is used
    time.sleep(1.1)
    report = client.post(
        f"/connections/{connection['id']}/test", headers=auth_header(tenant.customer)
    ).get_json()
    assert report["ok"] is True, report
    # Then the new access token is persisted and the refresh token kept (the app sent none back)
    second = _credentials(services, connection["id"])
    assert second["accessToken"] != first["accessToken"]
    assert second["refreshToken"] == first["refreshToken"]
    # And the tokens never appear in plaintext
    stored = repr(list(services.db.connections.find()))
    assert first["refreshToken"] not in stored and second["accessToken"] not in stored


def test_forged_state_is_refused(client, tenant):
    response = client.get("/connections/oauth2/callback?code=abc&state=forged")
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "state"
