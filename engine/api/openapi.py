"""GET /openapi.json: the OpenAPI 3 document, built from the views' own declarations.

Every route of the app is listed. Request bodies come from `@validate_body` (the schema that
validates them), responses and query parameters from `@document`, security from `@require`.
A route that declares nothing still appears, with its docstring.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify

from engine.api.schema import OPENAPI_ATTRIBUTE

blueprint = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}
_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-zA-Z_][a-zA-Z0-9_]*)>")
_SKIPPED_ENDPOINTS = {"static"}


def _path(rule: str) -> str:
    return _PARAM.sub(r"{\1}", rule)


def _operation(view: Any, rule, method: str) -> dict[str, Any]:
    meta = getattr(view, OPENAPI_ATTRIBUTE, {}) or {}
    roles = getattr(view, "engine_roles", ())
    description = meta.get("description") or (view.__doc__ or "").strip()
    operation: dict[str, Any] = {
        "operationId": f"{rule.endpoint}.{method.lower()}",
        "summary": meta.get("summary") or rule.endpoint.replace("_", " "),
        "tags": meta.get("tags") or [rule.endpoint.split(".")[0]],
    }
    if description:
        operation["description"] = description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in rule.arguments
    ]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in (meta.get("query") or {}).items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if "requestBody" in meta:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": meta["requestBody"]}},
        }
    elif "multipart" in meta:
        operation["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": meta["multipart"]}},
        }
    responses: dict[str, Any] = {}
    for status, schema in (meta.get("responses") or {"200": None}).items():
        entry: dict[str, Any] = {"description": "success" if int(status) < 300 else "error"}
        if schema is not None:
            entry["content"] = {"application/json": {"schema": schema}}
        responses[str(status)] = entry
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    if "requestBody" in operation or parameters:
        responses.setdefault(
            "400", {"description": "invalid request (the field is named)", "content": error_content}
        )
    if roles:
        operation["security"] = [{"bearer": []}]
        operation["x-roles"] = [str(r) for r in roles]
        responses.setdefault("401", {"description": "no, invalid or expired token", "content": error_content})
        responses.setdefault(
            "403", {"description": "the token's role may not call this", "content": error_content}
        )
    if rule.arguments:
        responses.setdefault("404", {"description": "not found", "content": error_content})
    operation["responses"] = responses
    return operation


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of every route registered on app."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in _SKIPPED_ENDPOINTS:
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(_path(rule.rule), {})[method.lower()] = _operation(view, rule, method)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Integration engine API",
            "version": API_VERSION,
            "description": "Bearer JWTs: platform admin (SECRET), workspace admin and customer (workspace "
            "secret), console user (Auth0 RS256). Errors: {error: {type, message, field}}.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": ERROR},
        },
    }


@blueprint.get("/openapi.json")
def openapi():
    """This document."""
    cached = current_app.extensions.get("engine.openapi")
    if cached is None:
        cached = current_app.extensions["engine.openapi"] = build_document(current_app)
    return jsonify(cached)
