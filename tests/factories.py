"""Helpers that build tenants, tokens and resources for tests (over the real stores and API).

workspace, secret = create_workspace(services)
client = create_app(config, services).test_client()
admin = workspace_token(workspace, secret)
upload_demo_connector(client, admin)
create_integration(client, admin)                      # key "demo" on connector "demo"
connection = create_connection(client, customer_token(workspace, secret, "c1"),
                               credentials={"baseUrl": demo_url, "apiKey": key})
"""

from __future__ import annotations

import io
from typing import Any

from engine.auth.tokens import mint_platform_admin_token, mint_workspace_token
from engine.domain import tenancy
from engine.domain.tenancy import Customer, Workspace
from engine.services import Services


def auth_header(token: str) -> dict[str, str]:
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def create_workspace(
    services: Services, key: str | None = None, name: str = "Test workspace"
) -> tuple[Workspace, str]:
    """A new workspace in the services' database and its secret."""
    return tenancy.create_workspace(services, key, name)


def admin_token(services: Services) -> str:
    """A platform-admin token for these services' SECRET."""
    return mint_platform_admin_token(services.config.secret)


def workspace_token(workspace: Workspace, secret: str, *, ttl_seconds: int = 3600) -> str:
    """A workspace-admin token."""
    return mint_workspace_token(workspace.key, secret, ttl_seconds=ttl_seconds)


def customer_token(
    workspace: Workspace, secret: str, customer_internal_id: str, *, ttl_seconds: int = 3600
) -> str:
    """A customer token (the customer is created on its first request)."""
    return mint_workspace_token(
        workspace.key, secret, customer_id=customer_internal_id, ttl_seconds=ttl_seconds
    )


def create_customer(services: Services, workspace: Workspace, internal_id: str) -> Customer:
    """The customer with this internalId (created if missing)."""
    return tenancy.ensure_customer(services, workspace.id, internal_id)


def demo_connector_zip(variant: str = "demo") -> bytes:
    """The archive of the demo app's connector (examples/connectors/<variant>)."""
    from examples.connectors.build import build_demo_connector_zip

    return build_demo_connector_zip(variant)


def upload_connector(client, token: str, data: bytes, filename: str = "connector.zip"):
    """POST /connectors with a multipart archive; returns the response."""
    return client.post(
        "/connectors",
        headers=auth_header(token),
        data={"file": (io.BytesIO(data), filename)},
        content_type="multipart/form-data",
    )


def upload_demo_connector(client, token: str, variant: str = "demo") -> dict[str, Any]:
    """Upload the demo connector as a workspace admin; returns the connector document (asserts 201)."""
    response = upload_connector(client, token, demo_connector_zip(variant), f"{variant}.zip")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def create_integration(
    client,
    token: str,
    key: str = "demo",
    connector_key: str = "demo",
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST /integrations as a workspace admin; returns the integration (asserts 201)."""
    payload: dict[str, Any] = {"key": key, "connectorKey": connector_key}
    if parameters is not None:
        payload["parameters"] = parameters
    response = client.post("/integrations", headers=auth_header(token), json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def create_connection(
    client,
    token: str,
    credentials: dict[str, Any],
    integration_key: str = "demo",
    *,
    customer_id: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """POST /connections (a customer token, or a workspace-admin token with customer_id); asserts 201."""
    payload: dict[str, Any] = {"integrationKey": integration_key, "credentials": credentials}
    if customer_id is not None:
        payload["customerId"] = customer_id
    if name is not None:
        payload["name"] = name
    response = client.post("/connections", headers=auth_header(token), json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def create_action(
    client,
    token: str,
    key: str,
    operation: dict[str, Any],
    integration_key: str = "demo",
    input_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST /actions as a workspace admin; asserts 201."""
    payload: dict[str, Any] = {"key": key, "integrationKey": integration_key, "operation": operation}
    if input_schema is not None:
        payload["inputSchema"] = input_schema
    response = client.post("/actions", headers=auth_header(token), json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()
