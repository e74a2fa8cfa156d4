"""Bad input on every route that takes input: 400 naming the problem, never a 500, nothing stored."""

from __future__ import annotations

import io

import pytest

from tests.factories import (
    auth_header,
    create_action,
    create_connection,
    create_integration,
    upload_demo_connector,
)
from tests.integration.api.conftest import DEMO_API_KEY

# (caller, method, path, kwargs, expected field or None)
BAD = [
    ("platform", "POST", "/workspaces", {"json": {"key": "UPPER case"}}, "key"),
    ("platform", "POST", "/workspaces", {"json": {"key": "ok", "extra": 1}}, "extra"),
    ("platform", "POST", "/workspaces", {"data": "{not json", "content_type": "application/json"}, None),
    ("platform", "GET", "/workspaces?limit=0", {}, "limit"),
    ("admin", "POST", "/customers", {"json": {}}, "internalId"),
    ("admin", "POST", "/customers", {"json": {"internalId": 5}}, "internalId"),
    ("admin", "GET", "/customers?limit=abc", {}, "limit"),
    ("admin", "POST", "/connectors", {"data": {}, "content_type": "multipart/form-data"}, "file"),
    (
        "admin",
        "POST",
        "/connectors",
        {"data": {"file": (io.BytesIO(b"PK\x03\x04junk"), "x.zip")}, "content_type": "multipart/form-data"},
        None,
    ),
    ("admin", "POST", "/integrations", {"json": {"key": "x"}}, "connectorKey"),
    (
        "admin",
        "POST",
        "/integrations",
        {"json": {"key": "x", "connectorKey": "demo", "parameters": {"a": [1]}}},
        "parameters.a",
    ),
    ("admin", "PUT", "/integrations/demo/parameters", {"json": {"parameters": "no"}}, "parameters"),
    ("customer", "POST", "/connections", {"json": {"integrationKey": "demo"}}, "credentials"),
    (
        "customer",
        "POST",
        "/connections",
        {"json": {"integrationKey": "demo", "credentials": {"apiKey": "k"}}},
        "credentials.baseUrl",
    ),
    (
        "customer",
        "POST",
        "/connections",
        {"json": {"integrationKey": "demo", "credentials": {}, "customerId": "z"}},
        "customerId",
    ),
    ("admin", "POST", "/connections", {"json": {"integrationKey": "demo", "credentials": {}}}, "customerId"),
    ("admin", "GET", "/connections?limit=5000", {}, "limit"),
    (
        "admin",
        "POST",
        "/actions",
        {"json": {"key": "a", "integrationKey": "demo", "operation": {"type": "x"}}},
        "operation.type",
    ),
    (
        "admin",
        "POST",
        "/actions",
        {
            "json": {
                "key": "a",
                "integrationKey": "demo",
                "operation": {"type": "http", "method": "GET", "path": "/{{ input."},
            }
        },
        None,
    ),
    (
        "admin",
        "POST",
        "/actions",
        {"json": {"key": "a", "integrationKey": "demo", "operation": {"type": "connector", "name": "nope"}}},
        "operation.name",
    ),
    (
        "admin",
        "POST",
        "/actions",
        {
            "json": {
                "key": "a",
                "integrationKey": "demo",
                "operation": {"type": "python", "code": "def run(:"},
            }
        },
        "operation.code",
    ),
    (
        "admin",
        "POST",
        "/actions",
        {
            "json": {
                "key": "a",
                "integrationKey": "demo",
                "inputSchema": {"type": 5},
                "operation": {"type": "transform", "output": 1},
            }
        },
        "inputSchema",
    ),
    ("customer", "POST", "/actions/make/run", {"json": {"input": {"n": "not a number"}}}, "input.n"),
    ("customer", "POST", "/actions/make/run", {"json": {"input": {}, "bogus": 1}}, "bogus"),
    ("customer", "POST", "/actions/make/run?waitSeconds=99", {"json": {"input": {"n": 1}}}, "waitSeconds"),
    ("admin", "POST", "/actions/make/run", {"json": {"input": {"n": 1}}}, "connectionId"),
    ("admin", "GET", "/action-runs?limit=-1", {}, "limit"),
]


def _counts(services) -> dict[str, int]:
    return {name: services.db[name].count_documents({}) for name in services.db.list_collection_names()}


@pytest.mark.parametrize(
    "caller, method, path, kwargs, field", BAD, ids=lambda v: v if isinstance(v, str) else None
)
def test_bad_input_is_400_and_nothing_is_stored(
    client, services, tenant, demo, caller, method, path, kwargs, field
):
    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin)
    create_connection(client, tenant.customer, {"baseUrl": demo.url, "apiKey": DEMO_API_KEY})
    create_action(
        client,
        tenant.admin,
        "make",
        {"type": "connector", "name": "create-contact"},
        input_schema={"type": "object", "properties": {"n": {"type": "integer"}}},
    )
    from tests.factories import admin_token

    token = {"platform": admin_token(services), "admin": tenant.admin, "customer": tenant.customer}[caller]
    before = _counts(services)
    blobs_before = len(
        services.blobs.client.list_objects_v2(Bucket=services.blobs.buckets.connectors).get("Contents", [])
    )
    response = client.open(path, method=method, headers=auth_header(token), **kwargs)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["message"]
    if field is not None:
        assert error.get("field") == field, error
    assert _counts(services) == before
    assert (
        len(
            services.blobs.client.list_objects_v2(Bucket=services.blobs.buckets.connectors).get(
                "Contents", []
            )
        )
        == blobs_before
    )
