"""/integrations: a workspace's use of a connector, with write-only app-level parameters."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, validate_body
from engine.auth.principal import Role
from engine.domain import integrations
from engine.domain.common import KEY_PATTERN

blueprint = Blueprint("integrations", __name__)

INTEGRATION = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "key": {"type": "string"},
        "name": {"type": "string"},
        "connectorKey": {"type": "string"},
        "connectorVersion": {"type": ["string", "null"]},
        "parameterNames": {"type": "array", "items": {"type": "string"}},
        "createdAt": {"type": "string", "format": "date-time"},
    },
}
PARAMETERS = {
    "type": "object",
    "maxProperties": 50,
    "additionalProperties": {"type": ["string", "number", "boolean"]},
    "description": "app-level parameters (e.g. OAuth clientId/clientSecret); write-only, encrypted",
}
CREATE_INTEGRATION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "connectorKey"],
    "properties": {
        "key": {"type": "string", "pattern": KEY_PATTERN},
        "name": {"type": "string", "maxLength": 200},
        "connectorKey": {"type": "string", "pattern": KEY_PATTERN},
        "connectorVersion": {
            "type": "string",
            "maxLength": 100,
            "description": "pin a version (default: always the current one)",
        },
        "parameters": PARAMETERS,
    },
}
SET_PARAMETERS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["parameters"],
    "properties": {"parameters": PARAMETERS},
}


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/integrations")
@document(summary="Create an integration", tags=["integrations"], responses={201: INTEGRATION})
@require(Role.WORKSPACE_ADMIN)
@validate_body(CREATE_INTEGRATION)
def create_integration():
    data = body()
    integration = integrations.create_integration(
        _services(),
        current_principal().workspace,
        data["key"],
        data["connectorKey"],
        data.get("connectorVersion"),
        data.get("parameters"),
        data.get("name"),
    )
    return jsonify(integration.to_public()), 201


@blueprint.get("/integrations")
@document(
    summary="List integrations",
    tags=["integrations"],
    query=LIST_QUERY,
    responses={200: page_schema(INTEGRATION)},
)
@require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
def list_integrations():
    cursor, limit = list_args()
    page = integrations.list_integrations(
        _services(), current_principal().workspace, cursor=cursor, limit=limit
    )
    return jsonify(page.to_document())


@blueprint.get("/integrations/<key>")
@document(
    summary="Get an integration (parameters are never shown)",
    tags=["integrations"],
    responses={200: INTEGRATION},
)
@require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
def get_integration(key: str):
    return jsonify(integrations.get_integration(_services(), current_principal().workspace, key).to_public())


@blueprint.put("/integrations/<key>/parameters")
@document(summary="Replace an integration's parameters", tags=["integrations"], responses={200: INTEGRATION})
@require(Role.WORKSPACE_ADMIN)
@validate_body(SET_PARAMETERS)
def set_parameters(key: str):
    integration = integrations.set_parameters(
        _services(), current_principal().workspace, key, body()["parameters"]
    )
    return jsonify(integration.to_public())
