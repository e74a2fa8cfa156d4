"""Execution of declarative HTTP operations against the external app.

`execute_operation` renders the operation's templates, adds authentication, sends the request
and maps the answer. Every failure of the app becomes an AppError subclass carrying what the
app said (redacted); nothing the app does can crash the caller with anything else.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import jsonschema
import requests

from engine.connectors import oauth2
from engine.connectors.errors import (
    AppAuthFailed,
    AppError,
    AppRateLimited,
    AppUnavailable,
    InvalidOperationInput,
    NotDeclarativeOperation,
    UnknownOperation,
)
from engine.connectors.redact import Redactor, excerpt
from engine.connectors.spec import AuthType, ConnectorSpec, OperationKind, OperationSpec, PaginationType
from engine.connectors.templates import compile_template, render_tree, stringify

DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0
MAX_RETRY_AFTER_SECONDS = 3600.0
BODY_EXCERPT_CHARS = 500
MAX_PAGES = 1_000_000  # a guard against an app whose cursor never ends

CredentialsCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class OperationResult:
    """The answer of the app: `output` is the mapped body (`response.output` path, else the body),
    `records` the list at `response.records` if set, `next_cursor` the next page's cursor if any.
    `request_summary` and `response_summary` are redacted, ready to log."""

    status: int
    headers: Mapping[str, str]
    body: Any
    output: Any
    records: list[Any] | None = None
    next_cursor: str | None = None
    duration_ms: float = 0.0
    request_summary: Mapping[str, Any] = field(default_factory=dict)
    response_summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """One page of a collection. `next_cursor` is None on the last page."""

    records: list[Any]
    next_cursor: str | None


def get_path(document: Any, path: str | None) -> Any:
    """The value at a dotted path (`data.items`, `results.0`), or None when absent."""
    if not path:
        return document
    value = document
    for step in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value


def parse_retry_after(value: str | None, now: float | None = None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), within sane bounds."""
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - (
                time.time() if now is None else now
            )
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_SECONDS
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _operation(spec: ConnectorSpec, op_name: str) -> OperationSpec:
    op = spec.operations.get(op_name)
    if op is None:
        raise UnknownOperation(f"connector {spec.key} has no operation {op_name!r}", field="operation")
    if op.kind is not OperationKind.HTTP:
        raise NotDeclarativeOperation(field="operation")
    return op


def _build_url(
    spec: ConnectorSpec, op: OperationSpec, context: Mapping[str, Any], next_url: str | None
) -> str:
    base = str(render_tree(spec.base_uri, context))
    if not base.startswith(("http://", "https://")):
        raise AppError(0, f"the base URI is not an http(s) URL: {base[:100]!r}")
    if next_url:
        url = urljoin(base.rstrip("/") + "/", next_url)
    else:
        # Interpolated values are percent-encoded so an input like "../admin" stays one segment.
        path = str(compile_template(op.path or "").render(context, escape=lambda v: quote(v, safe="")))
        url = base.rstrip("/") + "/" + path.lstrip("/")
    # Credentials must never leave for another host, whatever a template or a next-url says.
    if _origin(url) != _origin(base):
        raise AppError(0, f"the request would leave the app's base URI ({_origin(base)[1]})")
    return url


def _authenticate(
    spec: ConnectorSpec, context: Mapping[str, Any], headers: dict[str, str], query: dict[str, Any]
) -> tuple[str, str] | None:
    auth = spec.auth
    if auth.type is AuthType.API_KEY:
        value = str(render_tree(auth.api_key_value, context))
        (headers if auth.api_key_in == "header" else query)[str(auth.api_key_name)] = value
    elif auth.type is AuthType.BASIC:
        return str(render_tree(auth.username, context)), str(render_tree(auth.password, context))
    elif auth.type is AuthType.BEARER:
        headers["Authorization"] = f"Bearer {render_tree(auth.token, context)}"
    elif auth.type is AuthType.OAUTH2:
        token = context["connection"].get(oauth2.ACCESS_TOKEN)
        if not token:
            raise AppAuthFailed(401, "the connection has no access token: reconnect")
        headers["Authorization"] = f"Bearer {token}"
    return None


def _message(body: Any, response: requests.Response) -> str:
    if isinstance(body, Mapping):
        for key in ("message", "error_description", "detail", "title", "error"):
            value = body.get(key)
            if isinstance(value, Mapping):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value
    return f"{response.status_code} {response.reason or ''}".strip()


def _raise_for_status(response: requests.Response, body: Any, redactor: Redactor) -> None:
    status = response.status_code
    if status < 400:
        return
    text = excerpt(body if body is not None else response.text, redactor, max_chars=BODY_EXCERPT_CHARS)
    message = f"the app answered {status}: {redactor.text(_message(body, response))}"
    if status == 429:
        raise AppRateLimited(parse_retry_after(response.headers.get("Retry-After")), message, text)
    if status >= 500:
        raise AppUnavailable(status, message, text)
    if status in (401, 403):
        raise AppAuthFailed(status, message, text)
    raise AppError(status, message, text)


def _parse_body(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _next_cursor(
    op: OperationSpec, body: Any, records: list[Any] | None, page_cursor: str | None
) -> str | None:
    pagination = op.pagination
    if pagination is None:
        return None
    if pagination.type is PaginationType.CURSOR:
        value = get_path(body, pagination.cursor_path)
    elif pagination.type is PaginationType.NEXT_URL:
        value = get_path(body, pagination.url_path)
    else:
        current = int(page_cursor) if page_cursor else pagination.first_page
        value = current + 1 if records else None
    return str(value) if value not in (None, "") else None


def _send(
    spec: ConnectorSpec,
    op: OperationSpec,
    input: Mapping[str, Any],
    credentials: Mapping[str, Any],
    parameters: Mapping[str, Any],
    cursor: str | None,
    session: requests.Session,
    timeout_seconds: float,
) -> OperationResult:
    context = {"input": dict(input), "connection": dict(credentials), "parameters": dict(parameters)}
    redactor = Redactor.for_connection(spec.auth.fields, credentials, parameters)
    pagination = op.pagination
    next_url = cursor if pagination and pagination.type is PaginationType.NEXT_URL else None
    url = _build_url(spec, op, context, next_url)
    query: dict[str, Any] = {} if next_url else render_tree(dict(op.query), context)
    # JSON spelling for booleans: requests would send True as "True".
    query = {k: stringify(v) if isinstance(v, bool | dict | list) else v for k, v in query.items()}
    if cursor and pagination and pagination.type is PaginationType.CURSOR:
        query[str(pagination.cursor_param)] = cursor
    elif cursor and pagination and pagination.type is PaginationType.PAGE:
        query[str(pagination.page_param)] = cursor
    headers = {k: str(v) for k, v in render_tree(dict(op.headers), context).items()}
    headers.setdefault("Accept", "application/json")
    basic = _authenticate(spec, context, headers, query)
    body = render_tree(op.body, context) if op.body is not None else None
    payload = {"json": body} if op.body_type == "json" else {"data": body}
    request_summary = {
        "method": op.method,
        "url": redactor.url(requests.Request("GET", url, params=query).prepare().url or url),
        "headers": redactor.headers(headers),
        "body": redactor.document(body),
    }
    started = time.perf_counter()
    try:
        response = session.request(
            str(op.method),
            url,
            params=query,
            headers=headers,
            auth=basic,
            timeout=timeout_seconds,
            allow_redirects=False,
            **payload,
        )
    except requests.Timeout:
        raise AppUnavailable(0, f"the app did not answer within {timeout_seconds} s")
    except requests.RequestException as error:
        raise AppUnavailable(0, f"the app is unreachable: {redactor.text(type(error).__name__)}")
    duration_ms = (time.perf_counter() - started) * 1000
    response_body = _parse_body(response)
    _raise_for_status(response, response_body, redactor)
    records = get_path(response_body, op.records_path) if op.records_path else None
    if op.records_path and not isinstance(records, list):
        raise AppError(
            response.status_code,
            f"the answer has no list at {op.records_path!r}",
            excerpt(response_body, redactor, max_chars=BODY_EXCERPT_CHARS),
        )
    output = (
        get_path(response_body, op.output_path)
        if op.output_path
        else (records if records is not None else response_body)
    )
    response_summary = {
        "status": response.status_code,
        "durationMs": round(duration_ms, 1),
        "body": excerpt(response_body, redactor, max_chars=BODY_EXCERPT_CHARS),
    }
    return OperationResult(
        response.status_code,
        dict(response.headers),
        response_body,
        output,
        records,
        _next_cursor(op, response_body, records, cursor),
        duration_ms,
        request_summary,
        response_summary,
    )


def execute_operation(
    spec: ConnectorSpec,
    op_name: str,
    input: Mapping[str, Any],
    credentials: Mapping[str, Any],
    *,
    session: requests.Session,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    parameters: Mapping[str, Any] | None = None,
    cursor: str | None = None,
    on_credentials_refreshed: CredentialsCallback | None = None,
    now: float | None = None,
) -> OperationResult:
    """Run a declarative HTTP operation for a connection.

    `credentials` are the connection's fields (plus token fields for OAuth2); `parameters` the
    integration's app-level parameters. For OAuth2 the access token is refreshed first when near
    expiry, and once more on a 401; each time `on_credentials_refreshed(new_credentials)` is
    called so the caller persists them. Raises AppError subclasses for the app's failures.
    """
    op = _operation(spec, op_name)
    if op.input_schema:
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(op.input_schema).iter_errors(input)
        )
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or None
            raise InvalidOperationInput(error.message, field=where)
    parameters = parameters or {}
    refreshed = False
    if spec.auth.type is AuthType.OAUTH2:
        new = oauth2.refresh_if_needed(
            credentials, spec, session, now, parameters=parameters, timeout_seconds=timeout_seconds
        )
        if new is not None:
            credentials, refreshed = new, True
            if on_credentials_refreshed:
                on_credentials_refreshed(new)
    try:
        return _send(spec, op, input, credentials, parameters, cursor, session, timeout_seconds)
    except AppAuthFailed as error:
        # Retry once after a refresh, unless this very call already refreshed.
        if spec.auth.type is not AuthType.OAUTH2 or refreshed or error.app_status != 401:
            raise
        new = oauth2.refresh_credentials(
            credentials, spec, session, now, parameters=parameters, timeout_seconds=timeout_seconds
        )
        if on_credentials_refreshed:
            on_credentials_refreshed(new)
        return _send(spec, op, input, new, parameters, cursor, session, timeout_seconds)


def list_records(
    spec: ConnectorSpec,
    collection: str,
    credentials: Mapping[str, Any],
    *,
    since: str | None = None,
    cursor: str | None = None,
    session: requests.Session,
    page_size: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    on_credentials_refreshed: CredentialsCallback | None = None,
) -> Iterator[Page]:
    """Yield the pages of a data collection, from `cursor` (resume) or the start.

    `since` and `page_size` reach the list operation as `input.since` and `input.limit`. Errors
    (AppRateLimited, AppUnavailable ...) propagate: the caller retries from the last cursor it saw.
    """
    if collection not in spec.data:
        raise UnknownOperation(
            f"connector {spec.key} has no data collection {collection!r}", field="collection"
        )
    op_name = spec.data[collection].list
    input: dict[str, Any] = {}
    if since is not None:
        input["since"] = since
    if page_size is not None:
        input["limit"] = page_size
    current = dict(credentials)

    def remember(new: dict[str, Any]) -> None:
        current.clear()
        current.update(new)
        if on_credentials_refreshed:
            on_credentials_refreshed(new)

    for _ in range(MAX_PAGES):
        result = execute_operation(
            spec,
            op_name,
            input,
            current,
            session=session,
            timeout_seconds=timeout_seconds,
            parameters=parameters,
            cursor=cursor,
            on_credentials_refreshed=remember,
        )
        records = (
            result.records
            if result.records is not None
            else (result.output if isinstance(result.output, list) else [])
        )
        next_cursor = result.next_cursor if records or spec.operations[op_name].pagination is None else None
        if next_cursor == cursor:
            next_cursor = None  # a cursor that does not move would loop forever
        yield Page(list(records), next_cursor)
        if next_cursor is None:
            return
        cursor = next_cursor
