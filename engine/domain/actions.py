"""Actions (domain.md §3): named operations on an integration, run as instant tasks.

An action's operation is one of:

- `{"type": "http", "method", "path", "query", "headers", "body", "bodyType", "response": {"output"}}`:
  a declarative HTTP request, each part a template over `input`, `connection` and `parameters`,
  authenticated like the connector's own operations;
- `{"type": "connector", "name": "<operation>"}`: an operation of the connector (HTTP or Python);
- `{"type": "python", "code": "def run(input, ctx): ..."}`: custom code run by the custom code runner;
- `{"type": "transform", "output": <template tree>}`: no call at all, the output rendered over
  `input` (mapping and tests; the benchmark's no-op).

`execute_action(services, action, connection, input)` runs one in-process and always returns an
ActionResult (app failures are results, not exceptions): the instant task and the flow engine's
`run-action` node both call it.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonschema

from engine.connectors import AppError
from engine.connectors.errors import TemplateError
from engine.connectors.http import execute_operation
from engine.connectors.redact import Redactor
from engine.connectors.spec import AuthType, OperationKind, OperationSpec
from engine.connectors.templates import compile_tree, render_tree
from engine.domain import connections as connection_service
from engine.domain.common import Page, check_key, iso, now, page_of
from engine.domain.connections import BoundConnection, Connection
from engine.domain.integrations import connector_of, get_integration
from engine.domain.validation import check
from engine.errors import (
    BadRequest,
    Conflict,
    EngineError,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    ValidationFailed,
)
from engine.ids import new_id
from engine.limits.custom_code import custom_code_slot
from engine.outbound import outbound_session
from engine.services import Services
from engine.store import actions as action_store

log = logging.getLogger(__name__)

OPERATION_TIMEOUT_SECONDS = 30.0
"""Longest wait for the external app (or the custom code runner) in one action run."""
CUSTOM_CODE_TIMEOUT_SECONDS = 30.0
"""How long a Python action waits on the runner (its own CUSTOM_CODE_TIMEOUT_SECONDS limits the job)."""
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
"""Largest output kept in an action-run record."""
ACTION_CACHE_SECONDS = 2.0
"""How long a process reuses an action definition it read (actions are replaced, not edited)."""
OPERATION_TYPES = ("http", "connector", "python", "transform")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class ActionOperationType:
    HTTP = "http"
    CONNECTOR = "connector"
    PYTHON = "python"
    TRANSFORM = "transform"


@dataclass(frozen=True)
class Action:
    id: str
    workspace_id: str
    key: str
    name: str
    integration_id: str
    integration_key: str
    operation: dict[str, Any]
    input_schema: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> Action:
        return cls(
            d["_id"],
            d["workspaceId"],
            d["key"],
            d.get("name", ""),
            d["integrationId"],
            d["integrationKey"],
            d["operation"],
            d.get("inputSchema"),
            d["createdAt"],
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "key": self.key,
            "name": self.name,
            "integrationId": self.integration_id,
            "integrationKey": self.integration_key,
            "operation": self.operation,
            "inputSchema": self.input_schema,
            "createdAt": self.created_at,
        }

    def to_run_document(self) -> dict[str, Any]:
        """What a run needs to execute this action: the definition without its name and input
        schema (the input is checked before the run is sent), so a large schema never rides along."""
        document = self.to_document()
        del document["name"], document["inputSchema"]
        return document

    def to_public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "integrationKey": self.integration_key,
            "operation": self.operation,
            "inputSchema": self.input_schema,
            "createdAt": iso(self.created_at),
        }


@dataclass
class ActionResult:
    """The outcome of one action run. `error` is an API error document ({type, message, status, ...})."""

    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    logs: str = ""

    @classmethod
    def failure(cls, error: EngineError, started: float, **summaries: Any) -> ActionResult:
        document = error.to_document()["error"]
        document["status"] = error.status
        return cls(False, None, document, (time.perf_counter() - started) * 1000, **summaries)


# ---------------------------------------------------------------- definitions


def _http_operation_spec(key: str, operation: dict[str, Any], input_schema: dict | None) -> OperationSpec:
    document: dict[str, Any] = {
        k: operation[k]
        for k in ("method", "path", "query", "headers", "body", "bodyType", "response")
        if k in operation
    }
    return OperationSpec.from_document(f"action:{key}", {**document, "inputSchema": input_schema})


def _check_operation(services: Services, workspace_id: str, integration, operation: Any) -> dict[str, Any]:
    if not isinstance(operation, dict) or operation.get("type") not in OPERATION_TYPES:
        raise ValidationFailed(
            f"operation.type must be one of {', '.join(OPERATION_TYPES)}", field="operation.type"
        )
    kind = operation["type"]
    try:
        if kind == ActionOperationType.HTTP:
            if str(operation.get("method", "")).upper() not in HTTP_METHODS:
                raise ValidationFailed(
                    f"operation.method must be one of {', '.join(HTTP_METHODS)}", field="operation.method"
                )
            if not isinstance(operation.get("path"), str):
                raise ValidationFailed("operation.path is required (a template)", field="operation.path")
            operation = {**operation, "method": operation["method"].upper()}
            for part in ("path", "query", "headers", "body"):
                if part in operation:
                    compile_tree(operation[part], f"operation.{part}")
        elif kind == ActionOperationType.CONNECTOR:
            spec = connector_of(services, integration).spec
            if spec is None or operation.get("name") not in spec.operations:
                raise ValidationFailed(
                    f"connector {integration.connector_key} has no operation {operation.get('name')!r}",
                    field="operation.name",
                )
        elif kind == ActionOperationType.PYTHON:
            code = operation.get("code")
            if not isinstance(code, str) or not code.strip():
                raise ValidationFailed("operation.code is required", field="operation.code")
            try:
                ast.parse(code)  # syntax only; the runner compiles it restricted
            except SyntaxError as error:
                raise ValidationFailed(
                    f"operation.code: syntax error line {error.lineno}: {error.msg}", field="operation.code"
                ) from None
        else:
            compile_tree(operation.get("output"), "operation.output")
    except TemplateError as error:
        raise ValidationFailed(error.message, field=error.field or "operation") from None
    return operation


def create_action(
    services: Services,
    workspace_id: str,
    key: Any,
    integration_key: Any,
    operation: Any,
    input_schema: Any = None,
    name: Any = None,
) -> Action:
    """Define an action on an integration; 400 naming the field when the definition is wrong."""
    check_key(key, "key")
    integration = get_integration(services, workspace_id, integration_key)
    if input_schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(input_schema)
        except jsonschema.SchemaError as error:
            raise ValidationFailed(
                f"inputSchema is not a valid JSON Schema: {error.message}", field="inputSchema"
            ) from None
    operation = _check_operation(services, workspace_id, integration, operation)
    action = Action(
        new_id("act"),
        workspace_id,
        key,
        name or key,
        integration.id,
        integration.key,
        operation,
        input_schema,
        now(),
    )
    try:
        action_store.insert(services.db, action.to_document())
    except action_store.ActionExists:
        raise Conflict(f"an action with key {key!r} already exists", field="key") from None
    return action


_cache: dict[tuple[str, str, str], tuple[float, Action]] = {}
_cache_lock = threading.Lock()


def get_action(services: Services, workspace_id: str, key: str, *, cached: bool = False) -> Action:
    cache_key = (services.db.name, workspace_id, key)
    if cached:
        hit = _cache.get(cache_key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
    document = action_store.find_by_key(services.db, workspace_id, key)
    if document is None:
        raise NotFound(f"no action {key!r}")
    action = Action.from_document(document)
    with _cache_lock:
        _cache[cache_key] = (time.monotonic() + ACTION_CACHE_SECONDS, action)
    return action


def list_actions(services: Services, workspace_id: str, *, cursor: str | None, limit: int) -> Page:
    return page_of(
        action_store.list_page(services.db, workspace_id, after_id=cursor, limit=limit + 1),
        limit,
        Action.from_document,
    )


def delete_action(services: Services, workspace_id: str, key: str) -> None:
    if not action_store.delete(services.db, workspace_id, key):
        raise NotFound(f"no action {key!r}")
    with _cache_lock:
        _cache.pop((services.db.name, workspace_id, key), None)


def validate_input(action: Action, input: Any) -> None:
    """400 naming the field (as `input.<path>`) when input does not match the action's schema."""
    if action.input_schema:
        check(action.input_schema, input, prefix="input")


# ---------------------------------------------------------------- execution


def _auth_headers(bound: BoundConnection) -> dict[str, str]:
    """Headers that authenticate a request to the app (given to the runner, never to the code)."""
    spec = bound.spec
    auth = spec.auth
    context = {"connection": bound.credentials, "parameters": bound.parameters, "input": {}}
    if auth.type is AuthType.API_KEY and auth.api_key_in == "header":
        return {str(auth.api_key_name): str(render_tree(auth.api_key_value, context))}
    if auth.type is AuthType.BEARER:
        return {"Authorization": f"Bearer {render_tree(auth.token, context)}"}
    if auth.type is AuthType.BASIC:
        pair = f"{render_tree(auth.username, context)}:{render_tree(auth.password, context)}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    if auth.type is AuthType.OAUTH2:
        token = bound.credentials.get("accessToken")
        return {"Authorization": f"Bearer {token}"} if token else {}
    raise BadRequest("custom code cannot use an API key sent in the query string")


def _run_python(
    services: Services, bound: BoundConnection, code: str, input: Any, redactor: Redactor, started: float
) -> ActionResult:
    from sandbox.client import HttpContext, shared_client
    from sandbox.errors import InvalidJob, RunnerBusy, RunnerUnavailable

    base_url = str(
        render_tree(
            bound.spec.base_uri,
            {"connection": bound.credentials, "parameters": bound.parameters, "input": {}},
        )
    )
    http = HttpContext(base_url=base_url, headers=_auth_headers(bound))
    client = shared_client(services.config.custom_code_runner_uri, CUSTOM_CODE_TIMEOUT_SECONDS + 5)
    owner = bound.connection
    try:
        with custom_code_slot(services, owner.workspace_id, owner.customer_id):
            job = client.run_job(
                code,
                input,
                connection=bound.public_fields(),
                http=http,
            )  # the runner's own time limit (CUSTOM_CODE_TIMEOUT_SECONDS there) applies
    except TooManyRequests as error:
        return ActionResult.failure(error, started)
    except RunnerBusy as error:
        return ActionResult.failure(ServiceUnavailable(f"the custom code runner is busy: {error}"), started)
    except RunnerUnavailable as error:
        return ActionResult.failure(ServiceUnavailable(redactor.text(str(error))), started)
    except InvalidJob as error:
        return ActionResult.failure(BadRequest(redactor.text(str(error))), started)
    finally:
        client.close()
    logs = redactor.text(job.logs or "")
    if job.ok:
        return ActionResult(
            True,
            _scrub(job.result, redactor),
            None,
            (time.perf_counter() - started) * 1000,
            {"customCode": True},
            {"runnerDurationMs": job.duration_ms},
            logs,
        )
    code_error = job.error
    message = redactor.text(code_error.message if code_error else "the custom code failed")
    document = {
        "type": "custom_code_error",
        "message": message,
        "status": 422,
        "codeErrorType": code_error.type if code_error else None,
        "line": code_error.line if code_error else None,
    }
    return ActionResult(
        False,
        None,
        document,
        (time.perf_counter() - started) * 1000,
        {"customCode": True},
        {"runnerDurationMs": job.duration_ms},
        logs,
    )


def _scrub(value: Any, redactor: Redactor) -> Any:
    """The value with the connection's secret values replaced (keys are kept: outputs are data)."""
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {k: _scrub(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, redactor) for v in value]
    return value


def _run_http(
    services: Services, bound: BoundConnection, spec, op_name: str, input: Any, started: float
) -> ActionResult:
    with outbound_session(services.config) as session:
        result = execute_operation(
            spec,
            op_name,
            input,
            bound.credentials,
            session=session,
            timeout_seconds=OPERATION_TIMEOUT_SECONDS,
            parameters=bound.parameters,
            on_credentials_refreshed=lambda new: connection_service.persist_refreshed(services, bound, new),
        )
    # An app may echo a credential back (or custom code may return one): it never leaves the engine.
    redactor = Redactor.for_connection(spec.auth.fields, bound.credentials, bound.parameters)
    return ActionResult(
        True,
        _scrub(result.output, redactor),
        None,
        (time.perf_counter() - started) * 1000,
        dict(result.request_summary),
        dict(result.response_summary),
    )


def execute_action(
    services: Services, action: Action, connection: Connection | None, input: Any
) -> ActionResult:
    """Run an action once, in this process, for a connection. Never raises for the app's or the
    input's faults: those come back as a failed ActionResult with an error document and status."""
    started = time.perf_counter()
    operation = action.operation
    try:
        validate_input(action, input)
        if operation["type"] == ActionOperationType.TRANSFORM:
            output = render_tree(operation.get("output"), {"input": input})
            return ActionResult(True, output, None, (time.perf_counter() - started) * 1000)
        if connection is None:
            raise BadRequest("this action calls the app: it needs a connection", field="connectionId")
        bound = connection_service.bind(services, connection)
        redactor = Redactor.for_connection(bound.spec.auth.fields, bound.credentials, bound.parameters)
        if operation["type"] == ActionOperationType.PYTHON:
            return _run_python(services, bound, operation["code"], input, redactor, started)
        if operation["type"] == ActionOperationType.CONNECTOR:
            op = bound.spec.operations.get(operation["name"])
            if op is None:
                raise BadRequest(
                    f"the connector has no operation {operation['name']!r} any more", field="operation.name"
                )
            if op.kind is OperationKind.PYTHON:
                source = (bound.connector.python_sources or {}).get(op.name)
                if source is None:
                    raise BadRequest(f"the source of operation {op.name!r} is missing")
                return _run_python(services, bound, source, input, redactor, started)
            return _run_http(services, bound, bound.spec, op.name, input, started)
        op = _http_operation_spec(action.key, operation, None)
        spec = dataclasses.replace(bound.spec, operations={**bound.spec.operations, op.name: op})
        return _run_http(services, bound, spec, op.name, input, started)
    except EngineError as error:
        if isinstance(error, AppError) and connection is not None:
            state = connection_service.state_after_error(error)
            if state is not None:
                connection_service.set_state(services, connection.id, state, error.message)
        return ActionResult.failure(error, started)
