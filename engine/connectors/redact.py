"""Redaction of secrets from request and response summaries before they reach a log.

Two complementary rules, because neither is enough alone:
- by name: headers and JSON keys that hold secrets (Authorization, apiKey, access_token ...),
  plus the auth fields the connector marks secret (`format: password` or `x-secret: true`);
- by value: every secret value of the connection is replaced wherever it appears, so an app
  echoing the API key in an error message, or a key sent as a query parameter, is caught too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[REDACTED]"
# Shorter values are not replaced by value: "1" or "us" would blank out half a log line.
MIN_SECRET_VALUE_CHARS = 6
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
    }
)
# Key names that always hold a secret, compared lower-case without separators.
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|apikey|authorization|credential|privatekey|signature)"
)


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def is_secret_key(name: str, extra: Iterable[str] = ()) -> bool:
    """Whether a header, query parameter or JSON key of this name holds a secret."""
    normalized = _normalize(name)
    return bool(_SECRET_KEY.search(normalized)) or normalized in {_normalize(e) for e in extra}


def secret_field_names(fields_schema: Mapping[str, Any]) -> frozenset[str]:
    """The auth fields marked secret in a connector's auth `fields` JSON Schema."""
    properties = fields_schema.get("properties") or {}
    return frozenset(
        name
        for name, schema in properties.items()
        if isinstance(schema, Mapping)
        and (schema.get("format") == "password" or schema.get("x-secret") is True)
    )


@dataclass(frozen=True)
class Redactor:
    """Redacts the secrets of one connection from anything about to be logged."""

    secret_keys: frozenset[str] = frozenset()
    secret_values: tuple[str, ...] = ()

    @classmethod
    def for_connection(
        cls,
        fields_schema: Mapping[str, Any],
        credentials: Mapping[str, Any],
        parameters: Mapping[str, Any] | None = None,
    ) -> Redactor:
        """Secrets: credentials fields marked secret or with a secret-looking name, and the same in
        the integration's parameters (e.g. an OAuth client secret)."""
        keys = secret_field_names(fields_schema)
        values: set[str] = set()
        for source in (credentials, parameters or {}):
            for name, value in source.items():
                if (
                    (name in keys or is_secret_key(name))
                    and isinstance(value, str | int)
                    and not isinstance(value, bool)
                ):
                    text = str(value)
                    if len(text) >= MIN_SECRET_VALUE_CHARS:
                        values.add(text)
        # Longest first so a secret containing another is replaced whole.
        return cls(frozenset(keys), tuple(sorted(values, key=len, reverse=True)))

    def text(self, value: str) -> str:
        for secret in self.secret_values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def headers(self, headers: Mapping[str, Any]) -> dict[str, str]:
        return {
            name: REDACTED
            if name.lower() in SECRET_HEADERS or is_secret_key(name, self.secret_keys)
            else self.text(str(value))
            for name, value in headers.items()
        }

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        query = [
            (k, REDACTED if is_secret_key(k, self.secret_keys) else self.text(v))
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        netloc = parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc else parts.netloc
        redacted = urlunsplit((parts.scheme, netloc, self.text(parts.path), urlencode(query, safe="[]"), ""))
        return redacted

    def document(self, value: Any) -> Any:
        """A copy of a JSON-like value with secret keys and secret values redacted."""
        if isinstance(value, Mapping):
            return {
                k: REDACTED
                if isinstance(k, str) and is_secret_key(k, self.secret_keys) and v not in (None, "")
                else self.document(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.document(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def excerpt(value: Any, redactor: Redactor, *, max_chars: int) -> str:
    """A short, redacted text of a response body for an error message or a log."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        value = json.dumps(redactor.document(value), separators=(",", ":"), default=str)
    text = redactor.text(value)
    return text if len(text) <= max_chars else text[:max_chars] + "..."
