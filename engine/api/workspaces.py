"""/workspaces: tenants, created by the platform admin (the secret is shown once)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from engine.api.auth import current_principal, require
from engine.api.schema import LIST_QUERY, body, document, list_args, page_schema, validate_body
from engine.auth.principal import Role
from engine.domain import tenancy
from engine.domain.common import KEY_PATTERN
from engine.errors import NotFound

blueprint = Blueprint("workspaces", __name__)

WORKSPACE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "key": {"type": "string"},
        "name": {"type": "string"},
        "createdAt": {"type": "string", "format": "date-time"},
    },
}
CREATE_WORKSPACE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "key": {"type": "string", "pattern": KEY_PATTERN},
        "name": {"type": "string", "maxLength": 200},
    },
}


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/workspaces")
@document(
    summary="Create a workspace",
    tags=["workspaces"],
    responses={201: {**WORKSPACE, "properties": {**WORKSPACE["properties"], "secret": {"type": "string"}}}},
)
@require(Role.PLATFORM_ADMIN)
@validate_body(CREATE_WORKSPACE)
def create_workspace():
    """Create a tenant. The answer carries its secret (signs its tokens): shown this once only."""
    data = body()
    workspace, secret = tenancy.create_workspace(_services(), data.get("key"), data.get("name"))
    return jsonify({**workspace.to_public(), "secret": secret}), 201


@blueprint.get("/workspaces")
@document(
    summary="List workspaces", tags=["workspaces"], query=LIST_QUERY, responses={200: page_schema(WORKSPACE)}
)
@require(Role.PLATFORM_ADMIN)
def list_workspaces():
    cursor, limit = list_args()
    return jsonify(tenancy.list_workspaces(_services(), cursor=cursor, limit=limit).to_document())


@blueprint.get("/workspaces/<key>")
@document(summary="Get a workspace", tags=["workspaces"], responses={200: WORKSPACE})
@require(Role.PLATFORM_ADMIN, Role.WORKSPACE_ADMIN)
def get_workspace(key: str):
    """A workspace admin sees only its own workspace."""
    principal = current_principal()
    if principal.role is not Role.PLATFORM_ADMIN and principal.workspace_key != key:
        raise NotFound(f"no workspace {key!r}")
    return jsonify(tenancy.get_workspace(_services(), key).to_public())
