"""Configuration: every environment variable of the product page, read and checked once.

`load_config(environ)` returns a frozen `Config` or raises `ConfigError` carrying one line per
problem, each naming its variable, so a process never starts half-configured.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlparse

from pymongo.errors import InvalidURI
from pymongo.uri_parser import parse_uri

DEFAULT_PORT = 5000
DEFAULT_HEADERS_TIMEOUT_MS = 61_000
DEFAULT_KEEPALIVE_TIMEOUT_MS = 61_000
DEFAULT_WEB_CONCURRENCY = 1
"""gunicorn worker processes of the API when WEB_CONCURRENCY is unset: the API scales by replicas
(the product page: 0.5 CPU per container, at least 2 instances, scaled on CPU), one process each."""
MAX_WEB_CONCURRENCY = 64
DEFAULT_MAX_QUEUED_TASKS_MEMORY_MB = 1024
DEFAULT_MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS = 3000
DEFAULT_AWS_REGION = "us-east-1"
DEFAULT_DATABASE_NAME = "integration-engine"
MIN_PRODUCTION_SECRET_LENGTH = 32
"""Secrets shorter than this are refused in production: they sign HS256 tokens (RFC 7518 §3.2 asks
for a key of at least 32 bytes) and derive the encryption key."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Mode(StrEnum):
    """A process mode, selected by its `IS_*` variable."""

    API = "api"
    INSTANT_WORKER = "instant-tasks-worker"
    QUEUED_WORKER = "queued-tasks-worker"
    ORCHESTRATOR = "orchestrator"


MODE_VARIABLES: dict[Mode, str] = {
    Mode.API: "IS_API",
    Mode.INSTANT_WORKER: "IS_INSTANT_TASKS_WORKER",
    Mode.QUEUED_WORKER: "IS_QUEUED_TASKS_WORKER",
    Mode.ORCHESTRATOR: "IS_ORCHESTRATOR",
}


class ConfigError(Exception):
    """The configuration is invalid."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Config:
    """The whole configuration of one engine process (see docs/operations.md)."""

    node_env: str
    mongo_uri: str
    redis_uris: tuple[str, ...]
    redis_cluster: bool
    secret: str = field(repr=False)
    encryption_secret: str = field(repr=False)
    port: int = DEFAULT_PORT
    base_uri: str = ""
    custom_code_runner_uri: str = ""
    auth0_domain: str | None = None
    auth0_client_id: str | None = None
    auth0_client_secret: str | None = field(default=None, repr=False)
    tmp_s3_bucket: str = "integration-engine-tmp"
    connectors_s3_bucket: str = "integration-engine-connectors"
    static_s3_bucket: str = "integration-engine-static"
    base_static_uri: str = ""
    aws_region: str = DEFAULT_AWS_REGION
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    s3_endpoint_url: str | None = None
    enable_limits: bool = False
    debug_all: bool = False
    modes: frozenset[Mode] = frozenset()
    headers_timeout_ms: int = DEFAULT_HEADERS_TIMEOUT_MS
    keepalive_timeout_ms: int = DEFAULT_KEEPALIVE_TIMEOUT_MS
    web_concurrency: int = DEFAULT_WEB_CONCURRENCY
    max_queued_tasks_memory_mb: int = DEFAULT_MAX_QUEUED_TASKS_MEMORY_MB
    max_queued_tasks_process_time_seconds: int = DEFAULT_MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS
    custom_code_memory_limit: int | None = None
    outbound_allowed_networks: tuple[str, ...] = ()
    """CIDRs outbound requests may reach although the outbound policy refuses them (engine/outbound.py)."""

    @property
    def is_production(self) -> bool:
        """True when NODE_ENV is `production`: stricter checks, one mode per process."""
        return self.node_env == "production"

    @property
    def database_name(self) -> str:
        """The database named in MONGO_URI's path, or the default name."""
        return urlparse(self.mongo_uri).path.lstrip("/") or DEFAULT_DATABASE_NAME

    @property
    def broker_url(self) -> str:
        """The Redis URL Celery uses as its broker (the first URI; see docs/operations.md)."""
        return self.redis_uris[0]

    @property
    def keepalive_timeout_seconds(self) -> int:
        """KEEPALIVE_TIMEOUT_MS rounded up to whole seconds (gunicorn's unit)."""
        return max(1, math.ceil(self.keepalive_timeout_ms / 1000))


class _Reader:
    """Reads variables and collects one problem line per bad variable."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[str] = []

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            if required:
                self.problems.append(f"{name}: is required but not set")
            return default
        return value.strip()

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.environ.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self.problems.append(f"{name}: expected 1/0 or true/false, got {value!r}")
        return default

    def integer(self, name: str, default: int | None, *, low: int = 1, high: int | None = None) -> int | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return default
        try:
            number = int(value.strip())
        except ValueError:
            self.problems.append(f"{name}: expected a whole number, got {value!r}")
            return default
        if number < low or (high is not None and number > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            self.problems.append(f"{name}: must be {bounds}, got {number}")
            return default
        return number

    def url(
        self,
        name: str,
        default: str | None = None,
        *,
        required: bool = False,
        schemes: tuple[str, ...] = ("http", "https"),
    ) -> str | None:
        value = self.text(name, default, required=required)
        if value is None or value == default:
            return value
        parsed = urlparse(value)
        if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
            self.problems.append(f"{name}: expected a {'/'.join(schemes)} URL, got {value!r}")
        return value


def _read_mongo_uri(reader: _Reader) -> str:
    uri = reader.text("MONGO_URI", required=True)
    if uri is None:
        return ""
    if not uri.startswith(("mongodb://", "mongodb+srv://")):
        reader.problems.append("MONGO_URI: expected a mongodb:// or mongodb+srv:// URI")
        return uri
    if uri.startswith("mongodb://"):
        try:
            parse_uri(uri, warn=True, connect_timeout=None)
        except (InvalidURI, ValueError) as exc:
            reader.problems.append(f"MONGO_URI: not a valid MongoDB URI ({exc})")
    return uri


def _read_redis(reader: _Reader) -> tuple[tuple[str, ...], bool]:
    cluster = []
    index = 1
    while (value := reader.environ.get(f"REDIS_CLUSTER_URI_{index}")) is not None:
        cluster.append(reader.url(f"REDIS_CLUSTER_URI_{index}", schemes=("redis", "rediss")) or value)
        index += 1
    single = reader.url("REDIS_URI", schemes=("redis", "rediss", "unix"))
    if single:
        # With both, REDIS_URI carries the Celery broker (kombu cannot speak the cluster protocol)
        # and the cluster carries the cache and the rate limits.
        return (single, *cluster), bool(cluster)
    if cluster:
        reader.problems.append(
            "REDIS_URI: required beside REDIS_CLUSTER_URI_N, as Celery's broker cannot use a Redis Cluster"
        )
        return tuple(cluster), True
    reader.problems.append("REDIS_URI: is required but not set (or set REDIS_CLUSTER_URI_1..N)")
    return (), False


def _read_secret(reader: _Reader, name: str, production: bool) -> str:
    value = reader.environ.get(name, "")
    if value.strip() == "":
        reader.problems.append(f"{name}: is required and must not be empty")
    elif production and len(value) < MIN_PRODUCTION_SECRET_LENGTH:
        reader.problems.append(
            f"{name}: must be at least {MIN_PRODUCTION_SECRET_LENGTH} characters in production"
        )
    return value


def _networks(text: str, name: str, problems: list[str]) -> tuple[str, ...]:
    """The CIDRs of a comma-separated list; one problem per part that is not a network."""
    from engine.outbound import parse_networks

    networks, bad = parse_networks(text)
    problems += [f"{name}: {part!r} is not a network (expected CIDRs like 10.1.0.0/16)" for part in bad]
    return networks


def load_config(environ: Mapping[str, str] | None = None, *, require_mode: bool = True) -> Config:
    """Read and check the environment; raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    reader = _Reader(env)
    node_env = reader.text("NODE_ENV", "development") or "development"
    if node_env not in ("production", "development", "test"):
        reader.problems.append(f"NODE_ENV: expected production, development or test, got {node_env!r}")
    production = node_env == "production"

    port = reader.integer("PORT", DEFAULT_PORT, low=1, high=65535) or DEFAULT_PORT
    mongo_uri = _read_mongo_uri(reader)
    redis_uris, redis_cluster = _read_redis(reader)
    secret = _read_secret(reader, "SECRET", production)
    encryption_secret = _read_secret(reader, "ENCRYPTION_SECRET", production)

    modes = frozenset(mode for mode, var in MODE_VARIABLES.items() if reader.flag(var))
    if require_mode and not modes:
        reader.problems.append(
            "IS_API, IS_INSTANT_TASKS_WORKER, IS_QUEUED_TASKS_WORKER, IS_ORCHESTRATOR: set one to 1 to choose a mode"
        )
    if production and len(modes) > 1:
        reader.problems.append(
            f"{', '.join(sorted(MODE_VARIABLES[m] for m in modes))}: only one mode per process in production"
        )

    # In production every variable of the product page's common table is required; elsewhere
    # the buckets and URIs have local defaults so `make run` needs nothing but the secrets.
    required = production
    base_uri = reader.url("BASE_URI", f"http://localhost:{port}", required=required) or ""
    runner_uri = reader.url("CUSTOM_CODE_RUNNER_URI", "http://127.0.0.1:5004", required=required) or ""
    buckets = {
        name: reader.text(name, default, required=required) or default
        for name, default in (
            ("TMP_S3_BUCKET", Config.tmp_s3_bucket),
            ("CONNECTORS_S3_BUCKET", Config.connectors_s3_bucket),
            ("STATIC_S3_BUCKET", Config.static_s3_bucket),
        )
    }
    base_static_uri = reader.url("BASE_STATIC_URI", "", required=required) or ""
    auth0_domain = reader.text("AUTH0_DOMAIN")
    auth0_client_id = reader.text("AUTH0_CLIENT_ID")
    if auth0_domain and not auth0_client_id:
        reader.problems.append("AUTH0_CLIENT_ID: is required when AUTH0_DOMAIN is set")

    config = Config(
        node_env=node_env,
        mongo_uri=mongo_uri,
        redis_uris=redis_uris,
        redis_cluster=redis_cluster,
        secret=secret,
        encryption_secret=encryption_secret,
        port=port,
        base_uri=base_uri,
        custom_code_runner_uri=runner_uri,
        auth0_domain=auth0_domain,
        auth0_client_id=auth0_client_id,
        auth0_client_secret=reader.text("AUTH0_CLIENT_SECRET"),
        tmp_s3_bucket=buckets["TMP_S3_BUCKET"],
        connectors_s3_bucket=buckets["CONNECTORS_S3_BUCKET"],
        static_s3_bucket=buckets["STATIC_S3_BUCKET"],
        base_static_uri=base_static_uri,
        aws_region=reader.text("AWS_REGION", DEFAULT_AWS_REGION) or DEFAULT_AWS_REGION,
        aws_access_key_id=reader.text("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=reader.text("AWS_SECRET_ACCESS_KEY"),
        s3_endpoint_url=reader.url("AWS_ENDPOINT_URL_S3"),
        enable_limits=reader.flag("ENABLE_LIMITS"),
        debug_all=reader.flag("DEBUG_ALL"),
        modes=modes,
        headers_timeout_ms=reader.integer("HEADERS_TIMEOUT_MS", DEFAULT_HEADERS_TIMEOUT_MS)
        or DEFAULT_HEADERS_TIMEOUT_MS,
        keepalive_timeout_ms=reader.integer("KEEPALIVE_TIMEOUT_MS", DEFAULT_KEEPALIVE_TIMEOUT_MS)
        or DEFAULT_KEEPALIVE_TIMEOUT_MS,
        web_concurrency=reader.integer("WEB_CONCURRENCY", DEFAULT_WEB_CONCURRENCY, high=MAX_WEB_CONCURRENCY)
        or DEFAULT_WEB_CONCURRENCY,
        max_queued_tasks_memory_mb=reader.integer(
            "MAX_QUEUED_TASKS_MEMORY_MB", DEFAULT_MAX_QUEUED_TASKS_MEMORY_MB
        )
        or DEFAULT_MAX_QUEUED_TASKS_MEMORY_MB,
        max_queued_tasks_process_time_seconds=reader.integer(
            "MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS", DEFAULT_MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS
        )
        or DEFAULT_MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS,
        custom_code_memory_limit=reader.integer("CUSTOM_CODE_MEMORY_LIMIT", None),
        outbound_allowed_networks=_networks(
            reader.text("OUTBOUND_ALLOWED_NETWORKS", "") or "", "OUTBOUND_ALLOWED_NETWORKS", reader.problems
        ),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return config
