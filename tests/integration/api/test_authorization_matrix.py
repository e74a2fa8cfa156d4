"""Every route of issue 3 x every kind of caller -> the expected status (401/403/404/2xx).

Callers: platform admin, the workspace's admin, its customer `cust-1` (who owns the connection
and the run), another workspace's admin, another customer of the same workspace, no token and a
badly signed token. Each case runs on fresh state, so a success of one caller cannot hide
another's.
"""

from __future__ import annotations

import pytest

from engine.auth.tokens import mint_workspace_token
from tests.factories import (
    admin_token,
    auth_header,
    create_action,
    create_connection,
    create_integration,
    create_workspace,
    customer_token,
    demo_connector_zip,
    upload_demo_connector,
    workspace_token,
)
from tests.integration.api.conftest import DEMO_API_KEY
from tests.integration.api.test_connections import _bump

CALLERS = ["platform", "admin", "customer", "other_workspace", "other_customer", "none", "bad"]

# (method, path, body, {caller: status}); unspecified callers: 401 for none/bad, else the "default".
P, A, C, OW, OC = "platform", "admin", "customer", "other_workspace", "other_customer"
ROUTES = [
    ("POST", "/workspaces", {"key": "brand-new"}, {P: 201, "default": 403}),
    ("GET", "/workspaces", None, {P: 200, "default": 403}),
    ("GET", "/workspaces/{ws}", None, {P: 200, A: 200, OW: 404, "default": 403}),
    ("POST", "/customers", {"internalId": "new-c"}, {A: 201, OW: 201, "default": 403}),
    ("GET", "/customers", None, {A: 200, OW: 200, "default": 403}),
    ("GET", "/customers/{customer}", None, {A: 200, OW: 404, "default": 403}),
    ("DELETE", "/customers/{customer}", None, {A: 204, OW: 404, "default": 403}),
    ("POST", "/connectors", "zip", {A: 201, OW: 201, "default": 403}),
    ("GET", "/connectors", None, {A: 200, C: 200, OW: 200, OC: 200, "default": 403}),
    ("GET", "/connectors/demo", None, {A: 200, C: 200, OW: 404, OC: 200, "default": 403}),
    ("POST", "/integrations", {"key": "demo2", "connectorKey": "demo"}, {A: 201, OW: 404, "default": 403}),
    ("GET", "/integrations", None, {A: 200, C: 200, OW: 200, OC: 200, "default": 403}),
    ("GET", "/integrations/demo", None, {A: 200, C: 200, OW: 404, OC: 200, "default": 403}),
    ("PUT", "/integrations/demo/parameters", {"parameters": {"a": "b"}}, {A: 200, OW: 404, "default": 403}),
    ("POST", "/connections", "connect", {A: 200, C: 200, OW: 404, OC: 201, "default": 403}),
    ("GET", "/connections", None, {A: 200, C: 200, OW: 200, OC: 200, "default": 403}),
    ("GET", "/connections/oauth2/callback?code=x&state=forged", None, {"all": 400}),
    ("GET", "/connections/{connection}", None, {A: 200, C: 200, OW: 404, OC: 404, "default": 403}),
    ("DELETE", "/connections/{connection}", None, {A: 204, C: 204, OW: 404, OC: 404, "default": 403}),
    ("POST", "/connections/{connection}/test", None, {A: 200, C: 200, OW: 404, OC: 404, "default": 403}),
    (
        "POST",
        "/actions",
        {"key": "new-action", "integrationKey": "demo", "operation": {"type": "transform", "output": {}}},
        {A: 201, OW: 404, "default": 403},
    ),
    ("GET", "/actions", None, {A: 200, C: 200, OW: 200, OC: 200, "default": 403}),
    ("GET", "/actions/echo", None, {A: 200, C: 200, OW: 404, OC: 200, "default": 403}),
    ("DELETE", "/actions/echo", None, {A: 204, OW: 404, "default": 403}),
    (
        "POST",
        "/actions/echo/run?waitSeconds=0",
        {"input": {"who": "x"}},
        {A: 202, C: 202, OW: 404, OC: 202, "default": 403},
    ),
    ("GET", "/action-runs", None, {A: 200, C: 200, OW: 200, OC: 200, "default": 403}),
    ("GET", "/action-runs/{run}", None, {A: 200, C: 200, OW: 404, OC: 404, "default": 403}),
]


def expected(table: dict, caller: str) -> int:
    if "all" in table:  # a public route: the token does not matter
        return table["all"]
    if caller in ("none", "bad"):
        return 401
    return table.get(caller, table["default"])


@pytest.fixture
def world(client, services, demo):
    workspace, secret = create_workspace(services)
    other, other_secret = create_workspace(services)
    admin = workspace_token(workspace, secret)
    customer = customer_token(workspace, secret, "cust-1")
    upload_demo_connector(client, admin)
    create_integration(client, admin)
    credentials = {"baseUrl": demo.url, "apiKey": DEMO_API_KEY}
    connection = create_connection(client, customer, credentials)
    create_action(client, admin, "echo", {"type": "transform", "output": {"hello": "{{ input.who }}"}})
    run = client.post("/actions/echo/run?waitSeconds=0", headers=auth_header(customer), json={"input": {}})
    assert run.status_code == 202
    customer_id = services.db.customers.find_one({"internalId": "cust-1"})["_id"]
    tokens = {
        "platform": admin_token(services),
        "admin": admin,
        "customer": customer,
        "other_workspace": workspace_token(other, other_secret),
        "other_customer": customer_token(workspace, secret, "cust-2"),
        "none": None,
        "bad": mint_workspace_token(workspace.key, "not-the-secret-0123456789-abcdefghijklmnopqrstuvwxyz"),
    }
    ids = {
        "ws": workspace.key,
        "customer": customer_id,
        "connection": connection["id"],
        "run": run.get_json()["id"],
    }
    return tokens, ids, credentials


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[0]} {r[1]}")
def test_authorization_matrix(client, world, route, caller):
    tokens, ids, credentials = world
    method, path, body, table = route
    token = tokens[caller]
    headers = auth_header(token) if token else {}
    kwargs: dict = {"headers": headers}
    if body == "zip":
        import io

        kwargs.update(
            data={"file": (io.BytesIO(_bump(demo_connector_zip(), "9.0.0")), "c.zip")},
            content_type="multipart/form-data",
        )
    elif body == "connect":
        payload = {"integrationKey": "demo", "credentials": credentials}
        if caller in ("admin", "other_workspace"):
            payload["customerId"] = "cust-1"
        kwargs["json"] = payload
    elif body is not None:
        kwargs["json"] = body
    response = client.open(path.format(**ids), method=method, **kwargs)
    assert response.status_code == expected(table, caller), response.get_data(as_text=True)[:300]
    if response.status_code in (401, 403):
        assert response.get_json()["error"]["message"]


def test_matrix_covers_every_route_of_issue_3(client):
    mine = ("workspaces", "customers", "connectors", "integrations", "connections", "actions", "action_runs")
    rules = {
        (m, r.rule)
        for r in client.application.url_map.iter_rules()
        if r.endpoint.split(".")[0] in mine
        for m in r.methods - {"HEAD", "OPTIONS"}
    }
    covered = {
        (
            m,
            p.split("?")[0]
            .replace("{ws}", "<key>")
            .replace("{customer}", "<customer_id>")
            .replace("{connection}", "<connection_id>")
            .replace("{run}", "<run_id>")
            .replace("/demo", "/<key>")
            .replace("/echo", "/<key>"),
        )
        for m, p, _, _ in ROUTES
    }
    assert rules - covered == set()
