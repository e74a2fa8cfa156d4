"""/connections: customers connect their accounts; credentials are write-only and encrypted."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, query_params, validate_body
from engine.auth.principal import Principal, Role
from engine.domain import connections, tenancy
from engine.domain.common import KEY_PATTERN
from engine.errors import ValidationFailed

blueprint = Blueprint("connections", __name__)

CONNECTION = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "integrationKey": {"type": "string"},
        "customerId": {"type": "string", "description": "the customer's internalId"},
        "name": {"type": "string"},
        "state": {"enum": ["READY", "DISCONNECTED", "ERROR"]},
        "lastError": {"type": ["string", "null"]},
        "createdAt": {"type": "string", "format": "date-time"},
        "updatedAt": {"type": "string", "format": "date-time"},
        "authorizationUrl": {
            "type": "string",
            "description": "OAuth2: where to send the customer to approve",
        },
    },
}
CREATE_CONNECTION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["integrationKey", "credentials"],
    "properties": {
        "integrationKey": {"type": "string", "pattern": KEY_PATTERN},
        "credentials": {"type": "object", "description": "the connector's auth fields (its JSON Schema)"},
        "name": {"type": "string", "maxLength": 200},
        "customerId": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "workspace admins only: the customer's internalId",
        },
    },
}
TEST_REPORT = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "state": {"type": "string"}, "error": {"type": "object"}},
}
CONNECTION_QUERY = {
    **LIST_QUERY,
    "customerId": {
        "type": "string",
        "maxLength": 200,
        "description": "workspace admins: one customer's connections",
    },
}


def _services():
    return current_app.extensions["engine.services"]


def _customer_of(principal: Principal, internal_id: str | None):
    services = _services()
    if principal.role is Role.CUSTOMER:
        if internal_id is not None and internal_id != principal.customer_internal_id:
            raise ValidationFailed("a customer token connects its own customer only", field="customerId")
        return principal.customer_id, principal.customer_internal_id
    if internal_id is None:
        raise ValidationFailed("a workspace admin must name the customer", field="customerId")
    customer = tenancy.ensure_customer(services, principal.workspace, internal_id)
    return customer.id, customer.internal_id


def _own(connection_id: str) -> connections.Connection:
    principal = current_principal()
    return connections.get_connection(
        _services(),
        principal.workspace,
        connection_id,
        principal.customer_id if principal.role is Role.CUSTOMER else None,
    )


@blueprint.post("/connections")
@document(
    summary="Connect a customer's account (or reconnect it)",
    tags=["connections"],
    responses={201: CONNECTION, 200: CONNECTION},
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
@validate_body(CREATE_CONNECTION)
def create_connection():
    """Credentials are validated against the connector's auth schema, encrypted, never returned."""
    data = body()
    principal = current_principal()
    customer_id, internal_id = _customer_of(principal, data.get("customerId"))
    connection, created = connections.connect(
        _services(),
        principal.workspace,
        customer_id,
        internal_id,
        data["integrationKey"],
        data["credentials"],
        data.get("name"),
    )
    answer = connection.to_public()
    if connection.state is connections.ConnectionState.DISCONNECTED:
        answer["authorizationUrl"] = connections.authorization_url(_services(), connection)
    return jsonify(answer), 201 if created else 200


@blueprint.get(connections.OAUTH_CALLBACK_PATH)
@document(
    summary="OAuth2 callback: the app redirects the customer here after approval",
    tags=["connections"],
    query={"code": {"type": "string"}, "state": {"type": "string"}},
    responses={200: CONNECTION},
)
def oauth_callback():
    """No bearer token: the signed, short-lived `state` names the connection."""
    connection = connections.complete_oauth(_services(), request.args.get("code"), request.args.get("state"))
    return jsonify(connection.to_public())


@blueprint.get("/connections")
@document(
    summary="List connections (a customer sees its own)",
    tags=["connections"],
    query=CONNECTION_QUERY,
    responses={200: page_schema(CONNECTION)},
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def list_connections():
    principal = current_principal()
    cursor, limit = list_args()
    customer_id = principal.customer_id
    if principal.role is not Role.CUSTOMER:
        internal = query_params(CONNECTION_QUERY).get("customerId")
        customer_id = (
            tenancy.get_customer(_services(), principal.workspace, internal).id if internal else None
        )
    page = connections.list_connections(
        _services(), principal.workspace, customer_id=customer_id, cursor=cursor, limit=limit
    )
    return jsonify(page.to_document())


@blueprint.get("/connections/<connection_id>")
@document(
    summary="Get a connection (never its credentials)", tags=["connections"], responses={200: CONNECTION}
)
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def get_connection(connection_id: str):
    return jsonify(_own(connection_id).to_public())


@blueprint.delete("/connections/<connection_id>")
@document(summary="Delete a connection and its credentials", tags=["connections"], responses={204: None})
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def delete_connection(connection_id: str):
    connections.delete_connection(_services(), _own(connection_id))
    return "", 204


@blueprint.post("/connections/<connection_id>/test")
@document(summary="Run the connector's test operation", tags=["connections"], responses={200: TEST_REPORT})
@require(Role.CUSTOMER, Role.WORKSPACE_ADMIN)
def test_connection(connection_id: str):
    """200 with ok true/false: a refusal by the app is a result (and sets the state), not an error."""
    return jsonify(connections.test_connection(_services(), _own(connection_id)))
