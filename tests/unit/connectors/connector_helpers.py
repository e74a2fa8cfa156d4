"""Helpers for the connector unit tests: build archives in memory."""

from __future__ import annotations

import io
import zipfile

import yaml

MINIMAL_SPEC = {
    "key": "acme",
    "name": "Acme",
    "version": "1.2.3",
    "baseUri": "https://{{ connection.subdomain }}.acme.test/api",
    "auth": {
        "type": "api-key",
        "fields": {
            "type": "object",
            "required": ["subdomain", "apiKey"],
            "properties": {
                "subdomain": {"type": "string"},
                "apiKey": {"type": "string", "format": "password"},
            },
        },
        "apiKey": {"in": "header", "name": "X-Api-Key", "value": "{{ connection.apiKey }}"},
    },
    "test": "me",
    "operations": {
        "me": {"method": "GET", "path": "/me"},
        "list-contacts": {
            "method": "GET",
            "path": "/contacts",
            "query": {"limit": "{{ input.limit | default(50) }}"},
            "response": {
                "records": "items",
                "pagination": {"type": "cursor", "cursorPath": "next", "cursorParam": "cursor"},
            },
        },
        "score": {"file": "operations/score.py"},
    },
    "data": {"contacts": {"list": "list-contacts", "events": {"created": "webhook", "deleted": "full-scan"}}},
}


def make_zip(
    entries: dict[str, bytes | str],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    attrs: dict[str, int] | None = None,
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            info.external_attr = (attrs or {}).get(name, 0o100644 << 16)
            archive.writestr(info, content)
    return buffer.getvalue()


def spec_text(document: dict | None = None) -> str:
    return yaml.safe_dump(document if document is not None else MINIMAL_SPEC, sort_keys=False)
