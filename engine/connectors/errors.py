"""Errors of the connector library.

Each exception's docstring is its default message. They subclass the engine's domain errors so
the API maps them to an HTTP status and a stable `type` without knowing this package.
"""

from __future__ import annotations

from typing import Any, cast

from engine.errors import BadRequest, EngineError, UpstreamError, ValidationFailed


class InvalidConnector(ValidationFailed):
    """The connector archive is invalid."""

    type = "invalid_connector"

    def __init__(self, message: str | None = None, field: str | None = None, **extra: object):
        super().__init__(message, field=field, **extra)


class TemplateError(InvalidConnector):
    """The template is invalid."""

    type = "invalid_template"


class TemplateRenderError(BadRequest):
    """A template refers to a value that is not there."""

    type = "template_error"

    def __init__(self, message: str | None = None, field: str | None = None, **extra: object):
        super().__init__(message, field=field, **extra)


class InvalidOperationInput(ValidationFailed):
    """The operation input does not match its input schema."""

    type = "invalid_operation_input"


class UnknownOperation(BadRequest):
    """The connector has no such operation."""

    type = "unknown_operation"


class NotDeclarativeOperation(BadRequest):
    """This operation is Python code: run it through the custom code runner."""

    type = "not_declarative_operation"


class AppError(UpstreamError):
    """The external app answered with an error."""

    type = "app_error"

    def __init__(self, app_status: int, message: str | None = None, body_excerpt: str = "", **extra: object):
        super().__init__(message, appStatus=app_status, appBody=body_excerpt, **cast(dict[str, Any], extra))
        self.app_status = app_status
        self.body_excerpt = body_excerpt


class AppAuthFailed(AppError):
    """The external app refused the connection's credentials."""

    type = "app_auth_failed"


class AppRateLimited(AppError):
    """The external app is rate limiting this connection: retry later."""

    type = "app_rate_limited"

    def __init__(
        self,
        retry_after_seconds: float,
        message: str | None = None,
        body_excerpt: str = "",
        app_status: int = 429,
        **extra: object,
    ):
        super().__init__(app_status, message, body_excerpt, retryAfterSeconds=retry_after_seconds, **extra)
        self.retry_after_seconds = retry_after_seconds


class AppUnavailable(AppError):
    """The external app is unavailable (5xx, timeout or connection refused): retry later."""

    type = "app_unavailable"


class CredentialsRefreshFailed(AppAuthFailed):
    """The OAuth2 access token could not be refreshed: the customer must reconnect."""

    type = "credentials_refresh_failed"


__all__ = [
    "AppAuthFailed",
    "AppError",
    "AppRateLimited",
    "AppUnavailable",
    "CredentialsRefreshFailed",
    "EngineError",
    "InvalidConnector",
    "InvalidOperationInput",
    "NotDeclarativeOperation",
    "TemplateError",
    "TemplateRenderError",
    "UnknownOperation",
]
