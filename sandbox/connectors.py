"""Connector references: a job may name a connector's Python operation instead of sending its code.

`"connector": {"workspace_id", "key", "version", "operation", "sha256"?}` names the archive the
engine stored on upload (engine/domain/integrations.py) in CONNECTORS_S3_BUCKET, at
`{workspace_id}/{key}/{version}/{sha256}.zip`. The runner reads that archive once per version
(versions are immutable), keeps the Python sources of its operations in memory (LRU, bounded by
MAX_CACHED_CONNECTOR_VERSIONS and MAX_CACHED_SOURCE_BYTES), and hands the operation's source to
the job exactly as inline code: same compile cache, limits and errors.

S3 is read in the request's thread before a job space is taken, and only on a cache miss.
boto3 and the engine's archive code are imported on first use: a runner that never sees a
reference never loads them.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.errors import BadRequest, RunnerUnavailable
from sandbox.models import ConnectorReference
from sandbox.settings import ConnectorStoreSettings

if TYPE_CHECKING:
    from engine.store.blobs import BlobStore

MAX_CACHED_CONNECTOR_VERSIONS = 256
"""Connector versions whose Python sources stay in memory; the least recently used go first."""
MAX_CACHED_SOURCE_BYTES = 64 * 1024 * 1024
"""Total UTF-8 size of the cached sources; past it the least recently used versions go first."""
FIELDS = ("workspace_id", "key", "version", "operation", "sha256")
_WORKSPACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ConnectorStoreUnavailable(RunnerUnavailable):
    """The connector store (S3) could not be read: retry later (HTTP 503)."""


@dataclass(frozen=True)
class _CachedVersion:
    """One archive's operations: name -> Python source, or None for an HTTP operation."""

    operations: Mapping[str, str | None]
    size_bytes: int


def parse_reference(document: Any) -> ConnectorReference:
    """Validate the `connector` field of a job request. Raises BadRequest naming `connector.<field>`."""
    from engine.connectors.schema import KEY_PATTERN, NAME_PATTERN, SEMVER_PATTERN

    if not isinstance(document, dict):
        raise BadRequest("connector", "must be an object {workspace_id, key, version, operation, sha256?}")
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise BadRequest(f"connector.{unknown[0]}", "unknown field")
    checks = (
        ("workspace_id", _WORKSPACE_ID.pattern, "the id of the workspace the connector was uploaded to"),
        ("key", KEY_PATTERN, "the connector's key (spec.yaml `key`)"),
        ("version", SEMVER_PATTERN, "the connector's version string (spec.yaml `version`, e.g. 1.0.0)"),
        ("operation", NAME_PATTERN, "the name of one of its Python operations"),
    )
    for name, pattern, what in checks:
        value = document.get(name)
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise BadRequest(f"connector.{name}", f"must be {what}")
    sha256 = document.get("sha256")
    if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
        raise BadRequest("connector.sha256", "must be the archive's sha256: 64 lowercase hex digits")
    return ConnectorReference(
        document["workspace_id"], document["key"], document["version"], document["operation"], sha256
    )


class ConnectorSources:
    """Python sources of connector operations, read from CONNECTORS_S3_BUCKET and cached (thread-safe)."""

    def __init__(
        self,
        settings: ConnectorStoreSettings,
        *,
        max_versions: int = MAX_CACHED_CONNECTOR_VERSIONS,
        max_bytes: int = MAX_CACHED_SOURCE_BYTES,
    ):
        self.settings = settings
        self.max_versions = max_versions
        self.max_bytes = max_bytes
        self._cache: OrderedDict[tuple[str, str, str, str | None], _CachedVersion] = OrderedDict()
        self._cached_bytes = 0
        self._lock = threading.Lock()
        self._store: BlobStore | None = None

    def source_of(self, reference: ConnectorReference) -> str:
        """The operation's Python source. Raises BadRequest naming `connector.key`, `.version`,
        `.sha256` or `.operation` when there is no such thing, ConnectorStoreUnavailable when S3
        cannot be read."""
        cache_key = (reference.workspace_id, reference.key, reference.version, reference.sha256)
        with self._lock:
            version = self._cache.get(cache_key)
            if version is not None:
                self._cache.move_to_end(cache_key)
        if version is None:
            version = self._load(reference)
            self._remember(cache_key, version)
        name = f"connector {reference.key} {reference.version}"
        if reference.operation not in version.operations:
            raise BadRequest("connector.operation", f"{name} has no operation {reference.operation!r}")
        source = version.operations[reference.operation]
        if source is None:
            raise BadRequest(
                "connector.operation",
                f"{reference.operation!r} of {name} is an HTTP operation: only Python operations run here",
            )
        return source

    def cached_versions(self) -> int:
        """How many connector versions are in the cache."""
        with self._lock:
            return len(self._cache)

    def _remember(self, cache_key: tuple[str, str, str, str | None], version: _CachedVersion) -> None:
        if version.size_bytes > self.max_bytes:
            return
        with self._lock:
            previous = self._cache.pop(cache_key, None)
            if previous is not None:
                self._cached_bytes -= previous.size_bytes
            self._cache[cache_key] = version
            self._cached_bytes += version.size_bytes
            while len(self._cache) > self.max_versions or self._cached_bytes > self.max_bytes:
                _, dropped = self._cache.popitem(last=False)
                self._cached_bytes -= dropped.size_bytes

    def _blob_store(self) -> BlobStore:
        with self._lock:
            if self._store is None:
                from engine.store.blobs import BlobStore, Buckets, s3_client

                settings = self.settings
                client = s3_client(
                    region=settings.region,
                    endpoint_url=settings.endpoint_url,
                    access_key_id=settings.access_key_id,
                    secret_access_key=settings.secret_access_key,
                )
                self._store = BlobStore(client, Buckets(tmp="", connectors=settings.bucket, static=""))
            return self._store

    def _load(self, reference: ConnectorReference) -> _CachedVersion:
        """Read and parse the archive (S3 I/O)."""
        from botocore.exceptions import BotoCoreError, ClientError

        from engine.store.blobs import BlobNotFound, connector_archive_key, connector_archive_prefix

        bucket = self.settings.bucket
        ref = reference
        try:
            store = self._blob_store()
            if ref.sha256 is not None:
                object_key = connector_archive_key(ref.workspace_id, ref.key, ref.version, ref.sha256)
            else:
                prefix = connector_archive_prefix(ref.workspace_id, ref.key, ref.version)
                keys = [k for k in store.keys_under(bucket, prefix, limit=2) if k.endswith(".zip")]
                if not keys:
                    raise self._not_found(store, ref)
                if len(keys) > 1:
                    raise BadRequest(
                        "connector.sha256",
                        f"several archives are stored for connector {ref.key} {ref.version}: "
                        "send the sha256 of the one to run",
                    )
                object_key = keys[0]
            try:
                data = store.get(bucket, object_key)
            except BlobNotFound:
                raise self._not_found(store, ref)
        except (BotoCoreError, ClientError) as error:
            raise ConnectorStoreUnavailable(
                f"the connector store (S3 bucket {bucket}) cannot be read: {error}"
            )
        return self._parse(ref, object_key, data)

    def _not_found(self, store: BlobStore, ref: ConnectorReference) -> BadRequest:
        """Which part of the reference names nothing stored."""
        from engine.store.blobs import connector_archive_prefix

        bucket = self.settings.bucket
        if ref.sha256 is not None and store.keys_under(
            bucket, connector_archive_prefix(ref.workspace_id, ref.key, ref.version), limit=1
        ):
            return BadRequest(
                "connector.sha256", f"no archive of connector {ref.key} {ref.version} has this sha256"
            )
        if store.keys_under(bucket, connector_archive_prefix(ref.workspace_id, ref.key), limit=1):
            return BadRequest("connector.version", f"connector {ref.key!r} has no version {ref.version!r}")
        return BadRequest("connector.key", f"no connector {ref.key!r} in workspace {ref.workspace_id}")

    @staticmethod
    def _parse(ref: ConnectorReference, object_key: str, data: bytes) -> _CachedVersion:
        """The archive's operations, checked as on upload (a stored archive is distrusted too)."""
        from engine.connectors import InvalidConnector, validate_archive
        from engine.connectors.spec import OperationKind

        name = f"connector {ref.key} {ref.version}"
        try:
            package = validate_archive(data)
        except InvalidConnector as error:
            raise BadRequest("connector", f"the stored archive of {name} is invalid: {error.message}")
        spec = package.spec
        if (
            spec.key != ref.key
            or spec.version != ref.version
            or not object_key.endswith(f"/{package.sha256}.zip")
        ):
            raise BadRequest("connector", f"the archive stored for {name} does not match its key")
        sources = package.python_sources()
        operations: dict[str, str | None] = {
            op_name: sources[op_name] if op.kind is OperationKind.PYTHON else None
            for op_name, op in spec.operations.items()
        }
        size = sum(len(source.encode("utf-8", "surrogatepass")) for source in sources.values())
        return _CachedVersion(operations, size)
