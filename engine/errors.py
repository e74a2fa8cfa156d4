"""Domain errors. Each maps to one HTTP status and a stable machine-readable `type`.

Each exception's docstring is its default message.
"""

from __future__ import annotations


class EngineError(Exception):
    """The request could not be served."""

    status = 500
    type = "internal_error"

    def __init__(self, message: str | None = None, *, field: str | None = None, **extra: object):
        super().__init__(message or (self.__doc__ or "").strip())
        self.message = message or (self.__doc__ or "").strip()
        self.field = field
        self.extra = extra

    def to_document(self) -> dict:
        document: dict[str, object] = {"type": self.type, "message": self.message}
        if self.field:
            document["field"] = self.field
        document.update(self.extra)
        return {"error": document}


class BadRequest(EngineError):
    """The request is malformed."""

    status = 400
    type = "bad_request"


class ValidationFailed(BadRequest):
    """A field of the request is invalid."""

    type = "validation_error"


class Unauthorized(EngineError):
    """Authentication is required: send Authorization: Bearer <token>."""

    status = 401
    type = "unauthorized"


class Forbidden(EngineError):
    """This token may not do that."""

    status = 403
    type = "forbidden"


class NotFound(EngineError):
    """No such resource."""

    status = 404
    type = "not_found"


class Conflict(EngineError):
    """The resource already exists or is in a state that forbids this."""

    status = 409
    type = "conflict"


class PayloadTooLarge(EngineError):
    """The request body is too large."""

    status = 413
    type = "payload_too_large"


class TooManyRequests(EngineError):
    """Too many requests: retry later."""

    status = 429
    type = "rate_limited"

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after_seconds: float = 1.0,
        field: str | None = None,
        **extra: object,
    ):
        super().__init__(message, field=field, **extra)
        self.retry_after_seconds = retry_after_seconds


class UpstreamError(EngineError):
    """The external app answered with an error."""

    status = 502
    type = "upstream_error"


class ServiceUnavailable(EngineError):
    """A dependency of the engine is unavailable: retry later."""

    status = 503
    type = "unavailable"
