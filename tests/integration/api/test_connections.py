"""Connectors, integrations and connections through the API, against the real demo app."""

from __future__ import annotations

import io
import zipfile

from tests.factories import (
    auth_header,
    create_connection,
    create_integration,
    demo_connector_zip,
    upload_connector,
    upload_demo_connector,
)
from tests.integration.api.conftest import DEMO_API_KEY


def _bump(data: bytes, version: str) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "spec.yaml":
                content = content.replace(b"version: 1.0.0", f"version: {version}".encode())
            target.writestr(info, content)
    return out.getvalue()


def test_upload_versions_and_list(client, services, tenant):
    created = upload_demo_connector(client, tenant.admin)
    assert created["key"] == "demo" and created["currentVersion"] == "1.0.0"
    again = upload_connector(client, tenant.admin, demo_connector_zip())
    assert again.status_code == 409
    newer = upload_connector(client, tenant.admin, _bump(demo_connector_zip(), "1.1.0"))
    assert newer.status_code == 201 and newer.get_json()["currentVersion"] == "1.1.0"
    listed = client.get("/connectors", headers=auth_header(tenant.admin)).get_json()["items"]
    assert [(c["key"], [v["version"] for v in c["versions"]]) for c in listed] == [
        ("demo", ["1.0.0", "1.1.0"])
    ]
    keys = services.blobs.keys_older_than(
        services.blobs.buckets.connectors,
        __import__("datetime").datetime(2100, 1, 1, tzinfo=__import__("datetime").UTC),
    )
    assert len(keys) == 2 and all(k.startswith(tenant.workspace.id + "/demo/") for k in keys)


def test_invalid_archive_is_400_and_nothing_stored(client, services, tenant):
    response = upload_connector(client, tenant.admin, b"not a zip")
    assert response.status_code == 400 and "zip" in response.get_json()["error"]["message"]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("spec.yaml", "key: demo\n")
    response = upload_connector(client, tenant.admin, out.getvalue())
    assert response.status_code == 400 and response.get_json()["error"]["field"].startswith("spec.yaml")
    assert services.db.connector_versions.count_documents({}) == 0


def test_connect_test_and_never_return_credentials(client, services, tenant, demo):
    upload_demo_connector(client, tenant.admin)
    integration = create_integration(client, tenant.admin)
    assert integration["connectorKey"] == "demo"
    connection = create_connection(client, tenant.customer, {"baseUrl": demo.url, "apiKey": DEMO_API_KEY})
    assert connection["state"] == "READY" and DEMO_API_KEY not in str(connection)
    report = client.post(
        f"/connections/{connection['id']}/test", headers=auth_header(tenant.customer)
    ).get_json()
    assert report["ok"] is True
    stored = services.db.connections.find_one({"_id": connection["id"]})
    assert DEMO_API_KEY not in repr(stored)
    # Another customer does not see it.
    other = tenant.token_of("cust-2")
    assert client.get(f"/connections/{connection['id']}", headers=auth_header(other)).status_code == 404
    assert client.get("/connections", headers=auth_header(other)).get_json()["items"] == []


def test_wrong_key_sets_error_state(client, tenant, demo):
    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin)
    connection = create_connection(
        client, tenant.customer, {"baseUrl": demo.url, "apiKey": "wrong-key-123456"}
    )
    report = client.post(
        f"/connections/{connection['id']}/test", headers=auth_header(tenant.customer)
    ).get_json()
    assert report["ok"] is False and report["state"] == "ERROR" and report["error"]["appStatus"] == 401


def test_credentials_checked_against_auth_schema_without_echo(client, services, tenant, demo):
    upload_demo_connector(client, tenant.admin)
    create_integration(client, tenant.admin)
    response = client.post(
        "/connections",
        headers=auth_header(tenant.customer),
        json={"integrationKey": "demo", "credentials": {"baseUrl": "ftp://x", "apiKey": "s3cr3t-value"}},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "credentials.baseUrl"
    assert "ftp://x" not in response.get_data(as_text=True)
    response = client.post(
        "/connections",
        headers=auth_header(tenant.customer),
        json={"integrationKey": "demo", "credentials": {"baseUrl": demo.url}},
    )
    assert response.get_json()["error"]["field"] == "credentials.apiKey"
    assert services.db.connections.count_documents({}) == 0


def test_the_loser_of_two_identical_uploads_keeps_the_winner_s_archive(client, services, tenant, monkeypatch):
    # Given the same archive uploaded twice at once: the second passed the "exists" check before
    # the first stored its version (simulated by skipping that check for it)
    from datetime import UTC, datetime

    from engine.store import connector_versions

    assert upload_demo_connector(client, tenant.admin)["currentVersion"] == "1.0.0"
    monkeypatch.setattr(connector_versions, "exists", lambda *_args: False)
    # When the second one finds the version taken
    response = upload_connector(client, tenant.admin, demo_connector_zip())
    # Then it is refused, and the archive the stored version points to is still there
    assert response.status_code == 409
    keys = services.blobs.keys_older_than(services.blobs.buckets.connectors, datetime(2100, 1, 1, tzinfo=UTC))
    assert len(keys) == 1
