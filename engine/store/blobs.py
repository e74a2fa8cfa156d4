"""S3 storage for connector archives, large payloads (tmp) and static files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from engine.config import Config

log = logging.getLogger(__name__)

S3_CONNECT_TIMEOUT_SECONDS = 3
S3_READ_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Buckets:
    """The three buckets of the product page."""

    tmp: str
    connectors: str
    static: str


class BlobNotFound(Exception):
    """No object is stored under that key."""


def s3_client(
    *, region: str, endpoint_url: str | None, access_key_id: str | None, secret_access_key: str | None
):
    """A boto3 S3 client with the engine's timeouts, retries and path-style addressing.

    Unset credentials leave boto3's default chain (instance role, ...) in charge."""
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=BotoConfig(
            connect_timeout=S3_CONNECT_TIMEOUT_SECONDS,
            read_timeout=S3_READ_TIMEOUT_SECONDS,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


def connector_archive_prefix(workspace_id: str, key: str, version: str | None = None) -> str:
    """The S3 key prefix of every archive of a connector (or of one version), ending in `/`."""
    return f"{workspace_id}/{key}/" + (f"{version}/" if version is not None else "")


def connector_archive_key(workspace_id: str, key: str, version: str, sha256: str) -> str:
    """Where an uploaded connector archive is stored in CONNECTORS_S3_BUCKET.

    The digest in the key means a losing concurrent upload never overwrites the winner's bytes.
    The custom code runner reads the same layout (sandbox/connectors.py)."""
    return f"{connector_archive_prefix(workspace_id, key, version)}{sha256}.zip"


class BlobStore:
    """Objects in S3, addressed by (bucket, key). The boto3 client is passed in."""

    def __init__(self, client, buckets: Buckets):
        self.client = client
        self.buckets = buckets

    @classmethod
    def from_config(cls, config: Config) -> BlobStore:
        """A store over the configured endpoint (AWS_ENDPOINT_URL_S3 for S3-compatible servers)."""
        client = s3_client(
            region=config.aws_region,
            endpoint_url=config.s3_endpoint_url,
            access_key_id=config.aws_access_key_id,
            secret_access_key=config.aws_secret_access_key,
        )
        return cls(
            client, Buckets(config.tmp_s3_bucket, config.connectors_s3_bucket, config.static_s3_bucket)
        )

    def ensure_buckets(self) -> None:
        """Create missing buckets (development only; production buckets are provisioned)."""
        for bucket in (self.buckets.tmp, self.buckets.connectors, self.buckets.static):
            try:
                self.client.head_bucket(Bucket=bucket)
            except ClientError:
                self.client.create_bucket(Bucket=bucket)
                log.info("created bucket %s", bucket)

    def put(
        self, bucket: str, key: str, data: bytes, *, content_type: str = "application/octet-stream"
    ) -> None:
        """Store bytes under key."""
        self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, bucket: str, key: str) -> bytes:
        """The bytes under key; BlobNotFound if none."""
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BlobNotFound(key) from exc
            raise

    def delete(self, bucket: str, key: str) -> None:
        """Delete key (no error if absent)."""
        self.client.delete_object(Bucket=bucket, Key=key)

    def keys_older_than(self, bucket: str, cutoff: datetime, *, prefix: str = "") -> list[str]:
        """Keys last modified before cutoff (UTC-aware)."""
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []) if obj["LastModified"] < cutoff)
        return keys

    def keys_under(self, bucket: str, prefix: str, *, limit: int = 1000) -> list[str]:
        """Up to `limit` (at most 1000) keys starting with prefix, in key order."""
        response = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=limit)
        return [obj["Key"] for obj in response.get("Contents", [])]

    def ping(self) -> bool:
        """True when the connectors bucket answers."""
        try:
            self.client.head_bucket(Bucket=self.buckets.connectors)
            return True
        except Exception:  # noqa: BLE001 - health checks report, they do not raise
            return False
