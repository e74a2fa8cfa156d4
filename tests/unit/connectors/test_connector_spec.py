"""ConnectorSpec: from_document/to_document and the derived views."""

from __future__ import annotations

import jsonschema
from connector_helpers import MINIMAL_SPEC

from engine.connectors.schema import SPEC_SCHEMA
from engine.connectors.spec import (
    AuthType,
    ChangeType,
    ConnectorSpec,
    EventType,
    OperationKind,
    PaginationType,
)


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SPEC_SCHEMA)


def test_from_document_builds_dataclasses():
    spec = ConnectorSpec.from_document(MINIMAL_SPEC)
    assert spec.auth.type is AuthType.API_KEY and spec.auth.api_key_name == "X-Api-Key"
    assert spec.auth.secret_fields() == {"apiKey"}
    listing = spec.operations["list-contacts"]
    assert listing.kind is OperationKind.HTTP and listing.records_path == "items"
    assert listing.pagination is not None and listing.pagination.type is PaginationType.CURSOR
    assert spec.operations["score"].kind is OperationKind.PYTHON
    assert spec.python_files() == {"score": "operations/score.py"}
    contacts = spec.data["contacts"]
    assert contacts.events == {ChangeType.CREATED: EventType.WEBHOOK, ChangeType.DELETED: EventType.FULL_SCAN}
    assert contacts.operation_names() == {"list": "list-contacts"}


def test_round_trip_is_stable():
    spec = ConnectorSpec.from_document(MINIMAL_SPEC)
    document = spec.to_document()
    assert ConnectorSpec.from_document(document) == spec
    assert ConnectorSpec.from_document(document).to_document() == document


def test_oauth2_defaults():
    document = dict(MINIMAL_SPEC)
    document["auth"] = {
        "type": "oauth2",
        "fields": {"type": "object"},
        "oauth2": {"authorizeUri": "https://a.test/auth", "tokenUri": "https://a.test/token"},
    }
    spec = ConnectorSpec.from_document(document)
    assert spec.auth.oauth2 is not None
    assert spec.auth.oauth2.client_id == "{{ parameters.clientId }}" and spec.auth.oauth2.refresh is True
    assert ConnectorSpec.from_document(spec.to_document()) == spec
