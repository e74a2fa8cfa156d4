"""The connector spec (`spec.yaml`) as frozen dataclasses, with its validation.

`validate_spec_document(document)` checks a parsed `spec.yaml` (JSON Schema of `schema.py`,
then the rules a schema cannot say: templates compile, referenced operations exist, embedded
JSON Schemas are valid). `ConnectorSpec.from_document` builds the dataclasses from a valid
document; `to_document` gives the same document back in canonical form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jsonschema

from engine.connectors.errors import InvalidConnector, TemplateError
from engine.connectors.redact import secret_field_names
from engine.connectors.schema import SPEC_SCHEMA
from engine.connectors.templates import compile_template, compile_tree

__all__ = [
    "SPEC_SCHEMA",
    "AuthSpec",
    "AuthType",
    "ChangeType",
    "CollectionSpec",
    "ConnectorSpec",
    "EventType",
    "OAuth2Spec",
    "OperationKind",
    "OperationSpec",
    "PaginationSpec",
    "PaginationType",
    "validate_spec_document",
]

DEFAULT_REFRESH_BEFORE_EXPIRY_SECONDS = 60
_VALIDATOR = jsonschema.Draft202012Validator(SPEC_SCHEMA)


class AuthType(StrEnum):
    API_KEY = "api-key"
    BASIC = "basic"
    BEARER = "bearer"
    OAUTH2 = "oauth2"


class OperationKind(StrEnum):
    HTTP = "http"
    PYTHON = "python"


class PaginationType(StrEnum):
    CURSOR = "cursor"  # the body holds the next cursor; send it back as a query parameter
    NEXT_URL = "next-url"  # the body holds the URL of the next page
    PAGE = "page"  # page numbers in a query parameter, until a page has no records


class ChangeType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class EventType(StrEnum):
    WEBHOOK = "webhook"
    PULL_LATEST_RECORDS = "pull-latest-records"
    FULL_SCAN = "full-scan"


def _drop_none(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if v is not None}


@dataclass(frozen=True)
class OAuth2Spec:
    authorize_uri: str
    token_uri: str
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    refresh: bool = True
    refresh_before_expiry_seconds: int = DEFAULT_REFRESH_BEFORE_EXPIRY_SECONDS
    # Templates over `parameters` (the integration's app-level parameters) by default.
    client_id: str = "{{ parameters.clientId }}"
    client_secret: str = "{{ parameters.clientSecret }}"
    client_auth: str = "body"

    @classmethod
    def from_document(cls, d: Mapping[str, Any]) -> OAuth2Spec:
        return cls(
            d["authorizeUri"],
            d["tokenUri"],
            tuple(d.get("scopes", ())),
            d.get("scopeSeparator", " "),
            d.get("refresh", True),
            d.get("refreshBeforeExpirySeconds", DEFAULT_REFRESH_BEFORE_EXPIRY_SECONDS),
            d.get("clientId", cls.client_id),
            d.get("clientSecret", cls.client_secret),
            d.get("clientAuth", "body"),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "authorizeUri": self.authorize_uri,
            "tokenUri": self.token_uri,
            "scopes": list(self.scopes),
            "scopeSeparator": self.scope_separator,
            "refresh": self.refresh,
            "refreshBeforeExpirySeconds": self.refresh_before_expiry_seconds,
            "clientId": self.client_id,
            "clientSecret": self.client_secret,
            "clientAuth": self.client_auth,
        }


@dataclass(frozen=True)
class AuthSpec:
    """How to authenticate: what the customer enters (`fields`, a JSON Schema) and where it goes."""

    type: AuthType
    fields: Mapping[str, Any]
    api_key_in: str | None = None  # "header" | "query"
    api_key_name: str | None = None  # header or query parameter name
    api_key_value: str | None = None  # template
    username: str | None = None  # basic: templates
    password: str | None = None
    token: str | None = None  # bearer: template
    oauth2: OAuth2Spec | None = None

    @classmethod
    def from_document(cls, d: Mapping[str, Any]) -> AuthSpec:
        api_key, basic, bearer = d.get("apiKey") or {}, d.get("basic") or {}, d.get("bearer") or {}
        return cls(
            AuthType(d["type"]),
            dict(d["fields"]),
            api_key.get("in"),
            api_key.get("name"),
            api_key.get("value"),
            basic.get("username"),
            basic.get("password"),
            bearer.get("token"),
            OAuth2Spec.from_document(d["oauth2"]) if d.get("oauth2") else None,
        )

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"type": self.type.value, "fields": dict(self.fields)}
        if self.type is AuthType.API_KEY:
            document["apiKey"] = {
                "in": self.api_key_in,
                "name": self.api_key_name,
                "value": self.api_key_value,
            }
        elif self.type is AuthType.BASIC:
            document["basic"] = {"username": self.username, "password": self.password}
        elif self.type is AuthType.BEARER:
            document["bearer"] = {"token": self.token}
        elif self.oauth2:
            document["oauth2"] = self.oauth2.to_document()
        return document

    def secret_fields(self) -> frozenset[str]:
        """Names of the customer-entered fields marked secret (`format: password` or `x-secret: true`)."""
        return secret_field_names(self.fields)


@dataclass(frozen=True)
class PaginationSpec:
    type: PaginationType
    cursor_path: str | None = None
    cursor_param: str | None = None
    url_path: str | None = None
    page_param: str | None = None
    first_page: int = 1

    @classmethod
    def from_document(cls, d: Mapping[str, Any]) -> PaginationSpec:
        return cls(
            PaginationType(d["type"]),
            d.get("cursorPath"),
            d.get("cursorParam"),
            d.get("urlPath"),
            d.get("pageParam"),
            d.get("firstPage", 1),
        )

    def to_document(self) -> dict[str, Any]:
        return _drop_none(
            {
                "type": self.type.value,
                "cursorPath": self.cursor_path,
                "cursorParam": self.cursor_param,
                "urlPath": self.url_path,
                "pageParam": self.page_param,
                "firstPage": self.first_page if self.type is PaginationType.PAGE else None,
            }
        )


@dataclass(frozen=True)
class OperationSpec:
    """One operation: a declarative HTTP request (templates) or a Python file run by the runner."""

    name: str
    kind: OperationKind
    description: str = ""
    input_schema: Mapping[str, Any] | None = None
    method: str | None = None
    path: str | None = None
    query: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None
    body_type: str = "json"
    output_path: str | None = None  # dotted path in the response body to the output
    records_path: str | None = None  # dotted path in the response body to the list of records
    pagination: PaginationSpec | None = None
    file: str | None = None  # python: path inside the archive

    @classmethod
    def from_document(cls, name: str, d: Mapping[str, Any]) -> OperationSpec:
        python = "file" in d or d.get("type") == "python"
        response = d.get("response") or {}
        return cls(
            name,
            OperationKind.PYTHON if python else OperationKind.HTTP,
            d.get("description", ""),
            d.get("inputSchema"),
            d.get("method"),
            d.get("path"),
            dict(d.get("query") or {}),
            dict(d.get("headers") or {}),
            d.get("body"),
            d.get("bodyType", "json"),
            response.get("output"),
            response.get("records"),
            PaginationSpec.from_document(response["pagination"]) if response.get("pagination") else None,
            d.get("file"),
        )

    def to_document(self) -> dict[str, Any]:
        if self.kind is OperationKind.PYTHON:
            return _drop_none(
                {
                    "type": "python",
                    "description": self.description or None,
                    "inputSchema": self.input_schema,
                    "file": self.file,
                }
            )
        response = _drop_none(
            {
                "output": self.output_path,
                "records": self.records_path,
                "pagination": self.pagination.to_document() if self.pagination else None,
            }
        )
        return _drop_none(
            {
                "type": "http",
                "description": self.description or None,
                "inputSchema": self.input_schema,
                "method": self.method,
                "path": self.path,
                "query": dict(self.query) or None,
                "headers": dict(self.headers) or None,
                "body": self.body,
                "bodyType": self.body_type if self.body is not None else None,
                "response": response or None,
            }
        )


@dataclass(frozen=True)
class CollectionSpec:
    """A data collection: the operations behind list / find-by-id / create / update / delete, and
    how changes of each type are learnt (webhook, pull-latest-records, full-scan)."""

    name: str
    list: str
    find_by_id: str | None = None
    create: str | None = None
    update: str | None = None
    delete: str | None = None
    id_field: str = "id"
    updated_at_field: str = "updated_at"
    events: Mapping[ChangeType, EventType] = field(default_factory=dict)
    description: str = ""

    @classmethod
    def from_document(cls, name: str, d: Mapping[str, Any]) -> CollectionSpec:
        events = {ChangeType(k): EventType(v) for k, v in (d.get("events") or {}).items()}
        return cls(
            name,
            d["list"],
            d.get("find-by-id"),
            d.get("create"),
            d.get("update"),
            d.get("delete"),
            d.get("idField", "id"),
            d.get("updatedAtField", "updated_at"),
            events,
            d.get("description", ""),
        )

    def to_document(self) -> dict[str, Any]:
        return _drop_none(
            {
                "description": self.description or None,
                "idField": self.id_field,
                "updatedAtField": self.updated_at_field,
                "list": self.list,
                "find-by-id": self.find_by_id,
                "create": self.create,
                "update": self.update,
                "delete": self.delete,
                "events": {k.value: v.value for k, v in self.events.items()} or None,
            }
        )

    def operation_names(self) -> dict[str, str]:
        """Method name (`list`, `find-by-id`, ...) -> operation name, for the methods defined."""
        methods = {
            "list": self.list,
            "find-by-id": self.find_by_id,
            "create": self.create,
            "update": self.update,
            "delete": self.delete,
        }
        return {method: op for method, op in methods.items() if op}


@dataclass(frozen=True)
class ConnectorSpec:
    key: str
    name: str
    version: str
    base_uri: str
    auth: AuthSpec
    operations: Mapping[str, OperationSpec]
    data: Mapping[str, CollectionSpec] = field(default_factory=dict)
    test: str | None = None
    description: str = ""

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, validate: bool = True) -> ConnectorSpec:
        """Build from a parsed `spec.yaml`. With `validate`, raise InvalidConnector on the first problem."""
        if validate:
            validate_spec_document(document)
        return cls(
            document["key"],
            document["name"],
            document["version"],
            document["baseUri"],
            AuthSpec.from_document(document["auth"]),
            {n: OperationSpec.from_document(n, d) for n, d in document["operations"].items()},
            {n: CollectionSpec.from_document(n, d) for n, d in (document.get("data") or {}).items()},
            document.get("test"),
            document.get("description", ""),
        )

    def to_document(self) -> dict[str, Any]:
        return _drop_none(
            {
                "key": self.key,
                "name": self.name,
                "version": self.version,
                "description": self.description or None,
                "baseUri": self.base_uri,
                "auth": self.auth.to_document(),
                "test": self.test,
                "operations": {n: op.to_document() for n, op in self.operations.items()},
                "data": {n: c.to_document() for n, c in self.data.items()} or None,
            }
        )

    def python_files(self) -> dict[str, str]:
        """Operation name -> file inside the archive, for the Python operations."""
        return {
            n: op.file for n, op in self.operations.items() if op.kind is OperationKind.PYTHON and op.file
        }


def _dotted(path: Any) -> str:
    return ".".join(str(p) for p in path)


def _schema_error_field(error: jsonschema.ValidationError) -> str:
    where = list(error.absolute_path)
    if error.validator == "required":
        # "'key' is a required property": name the missing property itself.
        missing = [
            p
            for p in error.validator_value
            if isinstance(error.instance, Mapping) and p not in error.instance
        ]
        if missing:
            where.append(missing[0])
    elif error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        if extra:
            where.append(extra[0])
    return _dotted(where) or "(root)"


def _first_schema_error(document: Any) -> jsonschema.ValidationError | None:
    errors = list(_VALIDATOR.iter_errors(document))
    if not errors:
        return None
    # The shallowest error first: "operations.x.method is required" beats a deep consequence.
    return min(errors, key=lambda e: (len(e.absolute_path), _dotted(e.absolute_path), e.message))


def _check_json_schema(schema: Any, where: str) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise InvalidConnector(f"not a valid JSON Schema: {error.message}", field=where)


def _check_template(source: str, where: str, roots: frozenset[str]) -> None:
    try:
        template = compile_template(source)
    except TemplateError as error:
        raise InvalidConnector(error.message, field=where)
    unknown = template.roots() - roots
    if unknown:
        raise InvalidConnector(
            f"{sorted(unknown)[0]} is not available here: use {sorted(roots)}", field=where
        )


def validate_spec_document(document: Any) -> None:
    """Raise InvalidConnector(message, field) naming the first problem of a parsed spec.yaml."""
    if not isinstance(document, Mapping):
        raise InvalidConnector("spec.yaml must be a mapping", field="(root)")
    error = _first_schema_error(document)
    if error is not None:
        raise InvalidConnector(error.message, field=_schema_error_field(error))
    static = frozenset({"connection", "parameters"})
    _check_template(document["baseUri"], "baseUri", static)
    auth = document["auth"]
    _check_json_schema(auth["fields"], "auth.fields")
    for block in ("apiKey", "basic", "bearer", "oauth2"):
        for key, value in (auth.get(block) or {}).items():
            if isinstance(value, str) and key not in ("in", "name", "clientAuth", "scopeSeparator"):
                _check_template(value, f"auth.{block}.{key}", static)
    operations = document["operations"]
    for name, op in operations.items():
        where = f"operations.{name}"
        if "inputSchema" in op:
            _check_json_schema(op["inputSchema"], f"{where}.inputSchema")
        for part in ("path", "query", "headers", "body"):
            if part in op:
                try:
                    compile_tree(op[part], f"{where}.{part}")
                except TemplateError as template_error:
                    raise InvalidConnector(
                        template_error.message, field=template_error.field or f"{where}.{part}"
                    )
    if "test" in document and document["test"] not in operations:
        raise InvalidConnector(f"no operation named {document['test']!r}", field="test")
    for name, collection in (document.get("data") or {}).items():
        for method in ("list", "find-by-id", "create", "update", "delete"):
            if method in collection and collection[method] not in operations:
                raise InvalidConnector(
                    f"no operation named {collection[method]!r}", field=f"data.{name}.{method}"
                )
