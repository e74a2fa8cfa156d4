"""Connectors: the spec.yaml format, archive validation, templates, HTTP execution, redaction.

Pure library code: no database, no Flask. See docs/connectors.md.
"""

from engine.connectors.archive import ConnectorPackage, parse_spec, validate_archive
from engine.connectors.errors import (
    AppAuthFailed,
    AppError,
    AppRateLimited,
    AppUnavailable,
    CredentialsRefreshFailed,
    InvalidConnector,
)
from engine.connectors.http import OperationResult, Page, execute_operation, list_records
from engine.connectors.oauth2 import authorization_url, exchange_code, refresh_credentials, refresh_if_needed
from engine.connectors.redact import Redactor
from engine.connectors.spec import ConnectorSpec

__all__ = [
    "AppAuthFailed",
    "AppError",
    "AppRateLimited",
    "AppUnavailable",
    "ConnectorPackage",
    "ConnectorSpec",
    "CredentialsRefreshFailed",
    "InvalidConnector",
    "OperationResult",
    "Page",
    "Redactor",
    "authorization_url",
    "exchange_code",
    "execute_operation",
    "list_records",
    "parse_spec",
    "refresh_credentials",
    "refresh_if_needed",
    "validate_archive",
]
