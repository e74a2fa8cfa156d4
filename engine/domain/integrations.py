"""Connectors (uploaded per workspace) and integrations (a workspace's use of one connector).

Decision: connectors are per-workspace. A workspace admin uploads the archive; its key is unique
within the workspace, so two workspaces may each have their own `demo`. Versions are immutable:
re-uploading a version is refused (409), and the latest uploaded version is the current one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import crypto
from engine.connectors import ConnectorPackage, ConnectorSpec, validate_archive
from engine.domain.common import Page, check_key, iso, now, page_of
from engine.errors import Conflict, NotFound, ValidationFailed
from engine.ids import new_id
from engine.services import Services
from engine.store import connector_versions as version_store
from engine.store import integrations as integration_store
from engine.store.blobs import connector_archive_key

MAX_PARAMETERS = 50
MAX_PARAMETER_CHARS = 10_000


@dataclass(frozen=True)
class ConnectorVersion:
    """One uploaded version; `spec` and `python_sources` are loaded only when asked for."""

    id: str
    workspace_id: str
    key: str
    version: str
    name: str
    sha256: str
    archive_key: str
    archive_bytes: int
    created_at: datetime
    spec: ConnectorSpec | None = None
    python_sources: dict[str, str] | None = None

    @classmethod
    def from_document(cls, d: dict[str, Any], *, with_spec: bool = False) -> ConnectorVersion:
        spec = ConnectorSpec.from_document(d["spec"], validate=False) if with_spec and d.get("spec") else None
        return cls(
            d["_id"],
            d["workspaceId"],
            d["key"],
            d["version"],
            d.get("name", ""),
            d["sha256"],
            d["archiveKey"],
            d.get("archiveBytes", 0),
            d["createdAt"],
            spec,
            d.get("pythonSources"),
        )

    def to_public(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "name": self.name,
            "sha256": self.sha256,
            "archiveBytes": self.archive_bytes,
            "uploadedAt": iso(self.created_at),
        }


def _archive_key(workspace_id: str, key: str, version: str, sha256: str) -> str:
    # The digest in the S3 key means a losing concurrent upload never overwrites the winner's bytes.
    return connector_archive_key(workspace_id, key, version, sha256)


def upload_connector(services: Services, workspace_id: str, data: bytes) -> dict[str, Any]:
    """Validate an archive and store it (S3 bytes, Mongo metadata). 400 if invalid, 409 if the version exists."""
    package: ConnectorPackage = validate_archive(data)
    spec = package.spec
    check_key(spec.key, "spec.yaml: key")
    if version_store.exists(services.db, workspace_id, spec.key, spec.version):
        raise Conflict(
            f"connector {spec.key} version {spec.version} was already uploaded; bump `version`",
            field="spec.yaml: version",
        )
    archive_key = _archive_key(workspace_id, spec.key, spec.version, package.sha256)
    services.blobs.put(
        services.blobs.buckets.connectors, archive_key, bytes(data), content_type="application/zip"
    )
    document = {
        "_id": new_id("cv"),
        "workspaceId": workspace_id,
        "key": spec.key,
        "version": spec.version,
        "name": spec.name,
        "sha256": package.sha256,
        "archiveKey": archive_key,
        "archiveBytes": package.archive_bytes,
        "createdAt": now(),
        "spec": spec.to_document(),
        "pythonSources": package.python_sources(),
    }
    try:
        version_store.insert(services.db, document)
    except version_store.VersionExists:
        # The winner may have stored this very archive under the same (content-addressed) key:
        # only an archive nobody references is removed.
        winner = version_store.find(services.db, workspace_id, spec.key, spec.version)
        if winner is None or winner.get("archiveKey") != archive_key:
            services.blobs.delete(services.blobs.buckets.connectors, archive_key)
        raise Conflict(
            f"connector {spec.key} version {spec.version} was already uploaded; bump `version`",
            field="spec.yaml: version",
        ) from None
    return get_connector(services, workspace_id, spec.key)


def _summary(versions: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(versions, key=lambda d: (d["createdAt"], d["_id"]))
    current = ordered[-1]
    return {
        "key": current["key"],
        "name": current.get("name", ""),
        "currentVersion": current["version"],
        "versions": [ConnectorVersion.from_document(d).to_public() for d in ordered],
    }


def get_connector(services: Services, workspace_id: str, key: str) -> dict[str, Any]:
    """The connector, its versions (oldest first) and the current one's spec."""
    versions = version_store.versions_of(services.db, workspace_id, key)
    if not versions:
        raise NotFound(f"no connector {key!r}")
    summary = _summary(versions)
    current = next(d for d in versions if d["version"] == summary["currentVersion"])
    return {**summary, "spec": current["spec"]}


def list_connectors(services: Services, workspace_id: str) -> dict[str, Any]:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for document in version_store.all_of_workspace(services.db, workspace_id):
        by_key.setdefault(document["key"], []).append(document)
    return {"items": [_summary(by_key[k]) for k in sorted(by_key)], "cursor": None}


_spec_cache: dict[tuple[str, str], ConnectorVersion] = {}
_cache_lock = threading.Lock()


def load_connector_version(
    services: Services, workspace_id: str, key: str, version: str | None = None
) -> ConnectorVersion:
    """A version with its spec (the current one when version is None). Versions are immutable,
    so a loaded one is cached by id for the life of the process."""
    documents = (
        version_store.versions_of(services.db, workspace_id, key)
        if version is None
        else [d for d in version_store.versions_of(services.db, workspace_id, key) if d["version"] == version]
    )
    if not documents:
        raise NotFound(f"no connector {key!r}" + (f" version {version}" if version else ""))
    chosen = max(documents, key=lambda d: (d["createdAt"], d["_id"]))
    cache_key = (services.db.name, chosen["_id"])
    cached = _spec_cache.get(cache_key)
    if cached is None:
        cached = ConnectorVersion.from_document(chosen, with_spec=True)
        with _cache_lock:
            _spec_cache[cache_key] = cached
    return cached


@dataclass(frozen=True)
class Integration:
    id: str
    workspace_id: str
    key: str
    name: str
    connector_key: str
    connector_version: str | None
    parameter_names: tuple[str, ...]
    parameters_envelope: dict | None
    created_at: datetime

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> Integration:
        return cls(
            d["_id"],
            d["workspaceId"],
            d["key"],
            d.get("name", ""),
            d["connectorKey"],
            d.get("connectorVersion"),
            tuple(d.get("parameterNames", ())),
            d.get("parameters"),
            d["createdAt"],
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "workspaceId": self.workspace_id,
            "key": self.key,
            "name": self.name,
            "connectorKey": self.connector_key,
            "connectorVersion": self.connector_version,
            "parameterNames": list(self.parameter_names),
            "parameters": self.parameters_envelope,
            "createdAt": self.created_at,
        }

    def to_public(self) -> dict[str, Any]:
        """Parameters are write-only: only their names are shown."""
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "connectorKey": self.connector_key,
            "connectorVersion": self.connector_version,
            "parameterNames": list(self.parameter_names),
            "createdAt": iso(self.created_at),
        }

    def parameters(self, services: Services) -> dict[str, Any]:
        """The decrypted app-level parameters."""
        if not self.parameters_envelope:
            return {}
        return crypto.decrypt_json(services.config.encryption_secret, self.parameters_envelope, aad=self.id)


def _check_parameters(parameters: Any) -> dict[str, Any]:
    if parameters is None:
        return {}
    if not isinstance(parameters, dict) or len(parameters) > MAX_PARAMETERS:
        raise ValidationFailed(
            f"parameters must be an object of at most {MAX_PARAMETERS} entries", field="parameters"
        )
    for name, value in parameters.items():
        if not isinstance(value, str | int | float | bool) or len(str(value)) > MAX_PARAMETER_CHARS:
            raise ValidationFailed(
                "each parameter must be a string, number or boolean", field=f"parameters.{name}"
            )
    return parameters


def create_integration(
    services: Services,
    workspace_id: str,
    key: Any,
    connector_key: Any,
    connector_version: Any = None,
    parameters: Any = None,
    name: Any = None,
) -> Integration:
    """Bind a connector (current version, or a pinned one) to the workspace."""
    check_key(key, "key")
    version = load_connector_version(services, workspace_id, connector_key, connector_version)
    del version  # only its existence matters here
    parameters = _check_parameters(parameters)
    integration_id = new_id("int")
    envelope = (
        crypto.encrypt_json(services.config.encryption_secret, parameters, aad=integration_id)
        if parameters
        else None
    )
    integration = Integration(
        integration_id,
        workspace_id,
        key,
        name or "",
        connector_key,
        connector_version,
        tuple(sorted(parameters)),
        envelope,
        now(),
    )
    try:
        integration_store.insert(services.db, integration.to_document())
    except integration_store.IntegrationExists:
        raise Conflict(f"an integration with key {key!r} already exists", field="key") from None
    return integration


def get_integration(services: Services, workspace_id: str, key: str) -> Integration:
    document = integration_store.find_by_key(services.db, workspace_id, key)
    if document is None:
        raise NotFound(f"no integration {key!r}")
    return Integration.from_document(document)


def get_integration_by_id(services: Services, integration_id: str) -> Integration:
    document = integration_store.find_by_id(services.db, integration_id)
    if document is None:
        raise NotFound(f"no integration {integration_id!r}")
    return Integration.from_document(document)


def set_parameters(services: Services, workspace_id: str, key: str, parameters: Any) -> Integration:
    """Replace the app-level parameters (write-only)."""
    integration = get_integration(services, workspace_id, key)
    parameters = _check_parameters(parameters)
    envelope = (
        crypto.encrypt_json(services.config.encryption_secret, parameters, aad=integration.id)
        if parameters
        else None
    )
    integration_store.update(
        services.db,
        workspace_id,
        integration.id,
        {"parameters": envelope, "parameterNames": sorted(parameters)},
    )
    return get_integration(services, workspace_id, key)


def list_integrations(services: Services, workspace_id: str, *, cursor: str | None, limit: int) -> Page:
    return page_of(
        integration_store.list_page(services.db, workspace_id, after_id=cursor, limit=limit + 1),
        limit,
        Integration.from_document,
    )


def connector_of(services: Services, integration: Integration) -> ConnectorVersion:
    """The connector version an integration uses now (pinned, or the current one)."""
    return load_connector_version(
        services, integration.workspace_id, integration.connector_key, integration.connector_version
    )
