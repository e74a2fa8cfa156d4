"""Request validation that also describes the API: one declaration, two uses.

    @blueprint.post("/things")
    @document(summary="Create a thing", tags=["things"], responses={201: THING})
    @require(Role.WORKSPACE_ADMIN)
    @validate_body(THING_REQUEST)
    def create_thing():
        data = body()

`validate_body` checks the JSON body against a JSON Schema (400 `validation_error` naming the
first offending field) and records the schema; `document` records the summary, responses and
query parameters. `engine/api/openapi.py` builds `GET /openapi.json` from these records, so the
document cannot drift from what the views enforce.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jsonschema
from flask import g, request

from engine.domain.validation import check, field_of  # noqa: F401 - re-exported for views
from engine.errors import BadRequest, ValidationFailed

OPENAPI_ATTRIBUTE = "engine_openapi"


def _meta(view: Callable) -> dict[str, Any]:
    meta = getattr(view, OPENAPI_ATTRIBUTE, None)
    if meta is None:
        meta = {}
        setattr(view, OPENAPI_ATTRIBUTE, meta)
    return meta


def validate_body(schema: Mapping[str, Any]) -> Callable:
    """A view decorator: the JSON body must match schema; the parsed body is `body()`."""
    jsonschema.Draft202012Validator.check_schema(schema)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            data = request.get_json(silent=True)
            if data is None:
                if request.get_data(cache=True):
                    raise BadRequest("the body is not valid JSON")
                data = {}
            check(schema, data)
            g.body = data
            return view(*args, **kwargs)

        _meta(wrapper)["requestBody"] = dict(schema)
        return wrapper

    return decorate


def body() -> Any:
    """The body validated by @validate_body."""
    return g.get("body", {})


def document(
    *,
    summary: str,
    tags: list[str] | None = None,
    responses: Mapping[int, Any] | None = None,
    query: Mapping[str, Mapping[str, Any]] | None = None,
    multipart: Mapping[str, Any] | None = None,
    description: str | None = None,
) -> Callable:
    """A view decorator recording OpenAPI metadata (responses: status -> JSON Schema or None)."""

    def decorate(view: Callable) -> Callable:
        meta = _meta(view)
        meta.update(
            {
                "summary": summary,
                "tags": tags or [],
                "responses": dict(responses or {}),
                "query": dict(query or {}),
                "description": description or (view.__doc__ or "").strip(),
            }
        )
        if multipart is not None:
            meta["multipart"] = dict(multipart)
        return view

    return decorate


def query_params(schema: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Read and check query parameters declared as name -> JSON Schema (strings, integers, booleans)."""
    values: dict[str, Any] = {}
    for name, rule in schema.items():
        raw = request.args.get(name)
        if raw is None:
            continue
        value: Any = raw
        if rule.get("type") == "integer":
            try:
                value = int(raw)
            except ValueError:
                raise ValidationFailed(f"{name} must be a whole number", field=name) from None
        elif rule.get("type") == "boolean":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValidationFailed(f"{name} must be true or false", field=name)
            value = raw.lower() in ("true", "1")
        check(rule, value, prefix=name)
        values[name] = value
    return values


LIST_QUERY = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "page size (default 100)"},
    "cursor": {"type": "string", "maxLength": 200, "description": "the `cursor` of the previous page"},
}
"""The query parameters of every list route (domain.md §5)."""


def list_args() -> tuple[str | None, int]:
    """(cursor, limit) of a list request."""
    values = query_params(LIST_QUERY)
    return values.get("cursor"), values.get("limit", 100)


def page_schema(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": dict(item)},
            "cursor": {"type": ["string", "null"]},
        },
    }
