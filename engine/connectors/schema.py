"""The JSON Schema of a connector's `spec.yaml` (domain.md §8), written down as data.

`docs/connectors.md` describes the same format in prose; keep them together.
"""

from __future__ import annotations

from typing import Any

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
KEY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# Semantic Versioning 2.0.0, the official regular expression.
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]

_TEMPLATE: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 4096}
_TEMPLATE_MAP: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"minLength": 1, "maxLength": 256},
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
_OPERATION_NAME: dict[str, Any] = {"type": "string", "pattern": NAME_PATTERN}
_JSON_SCHEMA: dict[str, Any] = {"type": "object"}  # checked further with check_schema()
_PATH: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 256}

_PAGINATION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "type": {"enum": ["cursor", "next-url", "page"]},
        "cursorPath": _PATH,
        "cursorParam": _PATH,
        "urlPath": _PATH,
        "pageParam": _PATH,
        "firstPage": {"type": "integer", "minimum": 0},
    },
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "cursor"}}},
            "then": {"required": ["cursorPath", "cursorParam"]},
        },
        {"if": {"properties": {"type": {"const": "next-url"}}}, "then": {"required": ["urlPath"]}},
        {"if": {"properties": {"type": {"const": "page"}}}, "then": {"required": ["pageParam"]}},
    ],
}

_OPERATION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["http", "python"]},
        "description": {"type": "string", "maxLength": 2000},
        "inputSchema": _JSON_SCHEMA,
        "method": {"enum": HTTP_METHODS},
        "path": _TEMPLATE,
        "query": _TEMPLATE_MAP,
        "headers": _TEMPLATE_MAP,
        "body": {},
        "bodyType": {"enum": ["json", "form"]},
        "response": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"output": _PATH, "records": _PATH, "pagination": _PAGINATION},
        },
        "file": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\.py$"},
    },
    # An operation with `file` (or `type: python`) is Python; otherwise declarative HTTP.
    "if": {
        "anyOf": [{"required": ["file"]}, {"properties": {"type": {"const": "python"}}, "required": ["type"]}]
    },
    "then": {
        "required": ["file"],
        "not": {"anyOf": [{"required": ["method"]}, {"required": ["path"]}, {"required": ["body"]}]},
    },
    "else": {"required": ["method", "path"]},
}

_EVENT: dict[str, Any] = {"enum": ["webhook", "pull-latest-records", "full-scan"]}

_COLLECTION: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["list"],
    "properties": {
        "description": {"type": "string", "maxLength": 2000},
        "idField": _PATH,
        "updatedAtField": _PATH,
        "list": _OPERATION_NAME,
        "find-by-id": _OPERATION_NAME,
        "create": _OPERATION_NAME,
        "update": _OPERATION_NAME,
        "delete": _OPERATION_NAME,
        "events": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"created": _EVENT, "updated": _EVENT, "deleted": _EVENT},
        },
    },
}

_AUTH: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "fields"],
    "properties": {
        "type": {"enum": ["api-key", "basic", "bearer", "oauth2"]},
        "fields": _JSON_SCHEMA,
        "apiKey": {
            "type": "object",
            "additionalProperties": False,
            "required": ["in", "name", "value"],
            "properties": {"in": {"enum": ["header", "query"]}, "name": _PATH, "value": _TEMPLATE},
        },
        "basic": {
            "type": "object",
            "additionalProperties": False,
            "required": ["username", "password"],
            "properties": {"username": _TEMPLATE, "password": _TEMPLATE},
        },
        "bearer": {
            "type": "object",
            "additionalProperties": False,
            "required": ["token"],
            "properties": {"token": _TEMPLATE},
        },
        "oauth2": {
            "type": "object",
            "additionalProperties": False,
            "required": ["authorizeUri", "tokenUri"],
            "properties": {
                "authorizeUri": _TEMPLATE,
                "tokenUri": _TEMPLATE,
                "scopes": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "scopeSeparator": {"type": "string", "maxLength": 4},
                "refresh": {"type": "boolean"},
                "refreshBeforeExpirySeconds": {"type": "integer", "minimum": 0, "maximum": 86400},
                "clientId": _TEMPLATE,
                "clientSecret": _TEMPLATE,
                "clientAuth": {"enum": ["body", "basic"]},
            },
        },
    },
    "allOf": [
        {"if": {"properties": {"type": {"const": kind}}}, "then": {"required": [block]}}
        for kind, block in (
            ("api-key", "apiKey"),
            ("basic", "basic"),
            ("bearer", "bearer"),
            ("oauth2", "oauth2"),
        )
    ],
}

SPEC_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Connector spec.yaml",
    "type": "object",
    "additionalProperties": False,
    "required": ["key", "name", "version", "baseUri", "auth", "operations"],
    "properties": {
        "key": {"type": "string", "pattern": KEY_PATTERN},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "version": {"type": "string", "pattern": SEMVER_PATTERN},
        "description": {"type": "string", "maxLength": 10000},
        "baseUri": _TEMPLATE,
        "auth": _AUTH,
        "test": _OPERATION_NAME,
        "operations": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 500,
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _OPERATION,
        },
        "data": {
            "type": "object",
            "maxProperties": 100,
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _COLLECTION,
        },
    },
}
