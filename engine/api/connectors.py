"""/connectors: connector archives uploaded by a workspace admin (per-workspace; see docs/api.md)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from engine.api.auth import current_principal, require
from engine.api.schema import document
from engine.auth.principal import Role
from engine.domain import integrations
from engine.errors import BadRequest

blueprint = Blueprint("connectors", __name__)

VERSION = {
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "name": {"type": "string"},
        "sha256": {"type": "string"},
        "archiveBytes": {"type": "integer"},
        "uploadedAt": {"type": "string", "format": "date-time"},
    },
}
CONNECTOR = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        "name": {"type": "string"},
        "currentVersion": {"type": "string"},
        "versions": {"type": "array", "items": VERSION},
        "spec": {"type": "object", "description": "the current version's spec.yaml (docs/connectors.md)"},
    },
}
UPLOAD = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "the connector .zip (spec.yaml at its root)",
        }
    },
}


def _services():
    return current_app.extensions["engine.services"]


@blueprint.post("/connectors")
@document(
    summary="Upload a connector version", tags=["connectors"], multipart=UPLOAD, responses={201: CONNECTOR}
)
@require(Role.WORKSPACE_ADMIN)
def upload_connector():
    """Validates the archive (400 naming the first problem; nothing stored), stores it in
    CONNECTORS_S3_BUCKET; the same version twice is 409; a new version becomes current."""
    upload = request.files.get("file")
    if upload is None:
        raise BadRequest("send the archive as multipart/form-data field `file`", field="file")
    data = upload.read()
    if not data:
        raise BadRequest("the uploaded file is empty", field="file")
    return jsonify(integrations.upload_connector(_services(), current_principal().workspace, data)), 201


@blueprint.get("/connectors")
@document(
    summary="List connectors and their versions",
    tags=["connectors"],
    responses={200: {"type": "object", "properties": {"items": {"type": "array", "items": CONNECTOR}}}},
)
@require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
def list_connectors():
    return jsonify(integrations.list_connectors(_services(), current_principal().workspace))


@blueprint.get("/connectors/<key>")
@document(
    summary="Get a connector, its versions and current spec", tags=["connectors"], responses={200: CONNECTOR}
)
@require(Role.WORKSPACE_ADMIN, Role.CUSTOMER)
def get_connector(key: str):
    return jsonify(integrations.get_connector(_services(), current_principal().workspace, key))
