"""Tokens end to end through the API: who may call what, and why not."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from engine.app import create_app
from engine.auth.tokens import mint_platform_admin_token, mint_workspace_token
from engine.domain import tenancy
from tests.factories import admin_token, auth_header, create_workspace, customer_token, workspace_token


@pytest.fixture
def client(config, services):
    tenancy.clear_caches()
    return create_app(config, services).test_client()


def test_platform_admin_creates_workspace_and_secret_is_encrypted(client, services):
    response = client.post("/workspaces", headers=auth_header(admin_token(services)), json={"key": "acme"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["key"] == "acme" and len(body["secret"]) > 30
    stored = services.db.workspaces.find_one({"key": "acme"})
    assert body["secret"] not in repr(stored)
    # The secret signs working tokens.
    token = mint_workspace_token("acme", body["secret"])
    assert client.get("/workspaces/acme", headers=auth_header(token)).status_code == 200
    assert "secret" not in client.get("/workspaces/acme", headers=auth_header(token)).get_json()


def test_same_workspace_key_twice_is_409(client, services):
    headers = auth_header(admin_token(services))
    assert client.post("/workspaces", headers=headers, json={"key": "acme"}).status_code == 201
    response = client.post("/workspaces", headers=headers, json={"key": "acme"})
    assert response.status_code == 409 and response.get_json()["error"]["field"] == "key"


@pytest.mark.parametrize(
    "make_header, status, reason",
    [
        (lambda s, w, sec: {}, 401, "missing token"),
        (lambda s, w, sec: {"Authorization": "Basic abc"}, 401, "malformed Authorization"),
        (lambda s, w, sec: auth_header("not.a.jwt"), 401, "malformed token"),
        (
            lambda s, w, sec: auth_header(
                jwt.encode(
                    {"workspaceKey": w.key, "isAdmin": True, "exp": int(time.time()) + 60},
                    None,
                    algorithm="none",
                )
            ),
            401,
            "alg: none",
        ),
        (
            lambda s, w, sec: auth_header(
                mint_workspace_token(w.key, "wrong-secret-0123456789-abcdefghijklmnopqrstuvwxyz")
            ),
            401,
            "signature",
        ),
        (
            lambda s, w, sec: auth_header(
                mint_workspace_token(w.key, sec, now=datetime.now(UTC) - timedelta(days=2))
            ),
            401,
            "expired",
        ),
        (lambda s, w, sec: auth_header(mint_workspace_token("nope", sec)), 401, "unknown workspace"),
        (
            lambda s, w, sec: auth_header(
                mint_platform_admin_token("another-secret-0123456789-abcdefghijklmnopqrstuvwxyz")
            ),
            401,
            "signature",
        ),
        (lambda s, w, sec: auth_header(customer_token(w, sec, "c1")), 403, "workspace admin"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(client, services, make_header, status, reason):
    workspace, secret = create_workspace(services)
    response = client.get("/customers", headers=make_header(services, workspace, secret))
    assert response.status_code == status
    assert reason in response.get_json()["error"]["message"]


def test_customer_token_creates_its_customer_once(client, services):
    workspace, secret = create_workspace(services)
    token = customer_token(workspace, secret, "user-42")
    for _ in range(2):
        client.get("/workspaces/" + workspace.key, headers=auth_header(token))
    tenancy.clear_caches()
    client.get("/workspaces/" + workspace.key, headers=auth_header(token))
    assert services.db.customers.count_documents({"workspaceId": workspace.id, "internalId": "user-42"}) == 1
    listed = client.get("/customers", headers=auth_header(workspace_token(workspace, secret))).get_json()
    assert [c["internalId"] for c in listed["items"]] == ["user-42"]


def test_workspace_admin_manages_customers_of_its_workspace_only(client, services):
    ws_a, secret_a = create_workspace(services)
    ws_b, secret_b = create_workspace(services)
    admin_a, admin_b = workspace_token(ws_a, secret_a), workspace_token(ws_b, secret_b)
    created = client.post("/customers", headers=auth_header(admin_a), json={"internalId": "c1", "name": "C"})
    assert created.status_code == 201
    customer_id = created.get_json()["id"]
    assert client.get(f"/customers/{customer_id}", headers=auth_header(admin_a)).status_code == 200
    assert client.get(f"/customers/{customer_id}", headers=auth_header(admin_b)).status_code == 404
    assert client.delete(f"/customers/{customer_id}", headers=auth_header(admin_b)).status_code == 404
    assert (
        client.post("/customers", headers=auth_header(admin_a), json={"internalId": "c1"}).status_code == 409
    )
    assert client.delete(f"/customers/{customer_id}", headers=auth_header(admin_a)).status_code == 204


def test_list_paging(client, services):
    workspace, secret = create_workspace(services)
    headers = auth_header(workspace_token(workspace, secret))
    for i in range(5):
        client.post("/customers", headers=headers, json={"internalId": f"c{i}"})
    first = client.get("/customers?limit=3", headers=headers).get_json()
    second = client.get(f"/customers?limit=3&cursor={first['cursor']}", headers=headers).get_json()
    assert [c["internalId"] for c in first["items"] + second["items"]] == [f"c{i}" for i in range(5)]
    assert second["cursor"] is None
    assert client.get("/customers?limit=0", headers=headers).get_json()["error"]["field"] == "limit"


def test_a_remembered_token_still_expires_on_time(client, services):
    # Given a workspace token that expires (leeway included) about 1.5 s from now, used once
    from engine.auth.verify import LEEWAY_SECONDS

    workspace, secret = create_workspace(services)
    issued = datetime.now(UTC) - timedelta(seconds=LEEWAY_SECONDS)
    token = mint_workspace_token(workspace.key, secret, ttl_seconds=2, now=issued)
    assert client.get(f"/workspaces/{workspace.key}", headers=auth_header(token)).status_code == 200
    # When it is used again after it expired
    time.sleep(2.2)
    response = client.get(f"/workspaces/{workspace.key}", headers=auth_header(token))
    # Then the process that verified it before refuses it, as any other would
    assert response.status_code == 401 and response.get_json()["error"]["message"] == "token expired"


def test_a_remembered_token_is_forgotten_with_the_workspace_caches(client, services):
    # Given a workspace token verified once, then its workspace's secret replaced in MongoDB
    from engine import crypto

    workspace, secret = create_workspace(services)
    token = workspace_token(workspace, secret)
    assert client.get(f"/workspaces/{workspace.key}", headers=auth_header(token)).status_code == 200
    envelope = crypto.encrypt_json(
        services.config.encryption_secret, "another-secret-" + "x" * 30, aad=workspace.id
    )
    services.db.workspaces.update_one({"_id": workspace.id}, {"$set": {"secret": envelope}})
    # When the caches are cleared (as after a secret rotation) and the old token is used
    tenancy.clear_caches()
    response = client.get(f"/workspaces/{workspace.key}", headers=auth_header(token))
    # Then its signature no longer holds
    assert (
        response.status_code == 401 and response.get_json()["error"]["message"] == "invalid token signature"
    )
