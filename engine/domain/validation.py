"""JSON Schema validation with errors that name the offending field (shared by views and services)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from engine.errors import ValidationFailed


def field_of(error: jsonschema.ValidationError) -> str | None:
    """The dotted path of the offending field (for `required`, the missing property itself)."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path.append(str(missing[0]))
    elif error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = set((error.schema.get("properties") or {}).keys())
        extra = [name for name in error.instance if name not in allowed]
        if extra:
            path.append(str(extra[0]))
    return ".".join(path) or None


def _blind_message(error: jsonschema.ValidationError) -> str:
    """A message that does not quote the offending value (it may be a secret)."""
    if error.validator == "required":
        return "is required"
    if error.validator == "additionalProperties":
        return "is not an allowed property"
    if error.validator in (
        "type",
        "pattern",
        "format",
        "enum",
        "const",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
    ):
        return f"must satisfy {error.validator} {error.validator_value!r}"
    return f"is invalid ({error.validator})"


def check(schema: Mapping[str, Any], value: Any, *, prefix: str = "", quote_values: bool = True) -> None:
    """Validate value against schema; ValidationFailed naming the first field (prefixed) on failure.

    With quote_values=False the message never repeats the value (use it for credentials)."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        where = field_of(error)
        field = ".".join(p for p in (prefix, where) if p) or None
        message = error.message if quote_values else _blind_message(error)
        raise ValidationFailed(f"{field + ': ' if field else ''}{message}", field=field)
