"""The runner's settings, read once from the environment at start."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sandbox.errors import SettingsError

DEFAULT_PORT = 5000
DEFAULT_MEMORY_LIMIT_BYTES = 512 * 1024 * 1024
"""Per job. The product page suggests 20 GB, sized for its WASM runtime; a forked CPython job needs far less."""
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_OUTPUT_BYTES = 20 * 1024 * 1024
"""The node output limit of domain.md §6."""
DEFAULT_MAX_LOG_BYTES = 1024 * 1024
DEFAULT_QUEUE_WAIT_SECONDS = 2.0
"""A request beyond capacity waits this long for a job space, then gets 429 to retry elsewhere."""
MIN_MEMORY_LIMIT_BYTES = 16 * 1024 * 1024
"""Below this the interpreter cannot even start a job, so it is a configuration error."""
DEFAULT_AWS_REGION = "us-east-1"
"""The engine's default too (engine/config.py)."""


@dataclass(frozen=True)
class ConnectorStoreSettings:
    """Where `connector` references are read from: the engine's connector bucket and S3 variables.

    Only the runner's HTTP process holds these; the zygote and jobs never see its environment."""

    bucket: str
    region: str = DEFAULT_AWS_REGION
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RunnerSettings:
    """Settings of one custom code runner process. Limits are per job and are also the maximum a
    request may ask for."""

    port: int
    job_spaces: int
    default_memory_limit_mb: int
    default_timeout_seconds: float
    host: str = "0.0.0.0"  # noqa: S104 - internal service, reached from other pods
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    queue_wait_seconds: float = DEFAULT_QUEUE_WAIT_SECONDS
    isolate_network: bool = True
    debug: bool = False
    connector_store: ConnectorStoreSettings | None = None
    """None when CONNECTORS_S3_BUCKET is unset: `connector` references are then refused (400)."""
    production: bool = False
    """NODE_ENV=production: ctx.http may not reach loopback or private addresses (engine/outbound.py)."""
    outbound_allowed_networks: tuple[str, ...] = ()
    """OUTBOUND_ALLOWED_NETWORKS: CIDRs ctx.http may reach although the outbound policy refuses them."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RunnerSettings:
        """Read the settings from `environ` (default: os.environ).

        Raises SettingsError listing one line per invalid variable.
        """
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def read(name: str, default, parse, check, expectation: str):
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return default
            try:
                value = parse(raw.strip())
            except ValueError:
                problems.append(f"{name}={raw!r}: expected {expectation}")
                return default
            if not check(value):
                problems.append(f"{name}={raw!r}: expected {expectation}")
                return default
            return value

        port = read("PORT", DEFAULT_PORT, int, lambda v: 0 <= v <= 65535, "a port number 0..65535")
        spaces = read(
            "CUSTOM_CODE_RUNNER_JOB_SPACES",
            2 * (os.cpu_count() or 1),
            int,
            lambda v: v >= 1,
            "a whole number of job spaces >= 1",
        )
        memory = read(
            "CUSTOM_CODE_MEMORY_LIMIT",
            DEFAULT_MEMORY_LIMIT_BYTES,
            int,
            lambda v: v >= MIN_MEMORY_LIMIT_BYTES,
            f"a memory limit in bytes >= {MIN_MEMORY_LIMIT_BYTES}",
        )
        timeout = read(
            "CUSTOM_CODE_TIMEOUT_SECONDS",
            DEFAULT_TIMEOUT_SECONDS,
            float,
            lambda v: math.isfinite(v) and v > 0,
            "a positive number of seconds",
        )
        output = read(
            "CUSTOM_CODE_MAX_OUTPUT_BYTES",
            DEFAULT_MAX_OUTPUT_BYTES,
            int,
            lambda v: v >= 1024,
            "a size in bytes >= 1024",
        )
        logs = read(
            "CUSTOM_CODE_MAX_LOG_BYTES",
            DEFAULT_MAX_LOG_BYTES,
            int,
            lambda v: v >= 1024,
            "a size in bytes >= 1024",
        )
        wait = read(
            "CUSTOM_CODE_RUNNER_QUEUE_WAIT_SECONDS",
            DEFAULT_QUEUE_WAIT_SECONDS,
            float,
            lambda v: math.isfinite(v) and v >= 0,
            "a number of seconds >= 0",
        )
        isolate = read("CUSTOM_CODE_ISOLATE_NETWORK", True, _parse_bool, lambda v: True, "true or false")
        debug = read("DEBUG_ALL", False, _parse_bool, lambda v: True, "true or false")
        host = env.get("CUSTOM_CODE_RUNNER_HOST", "").strip() or "0.0.0.0"  # noqa: S104
        connector_store = _connector_store(env, problems)
        networks = _networks(env.get("OUTBOUND_ALLOWED_NETWORKS", ""), problems)
        if problems:
            raise SettingsError(problems)
        return cls(
            port=port,
            host=host,
            job_spaces=spaces,
            default_memory_limit_mb=max(1, memory // (1024 * 1024)),
            default_timeout_seconds=timeout,
            max_output_bytes=output,
            max_log_bytes=logs,
            queue_wait_seconds=wait,
            isolate_network=isolate,
            debug=debug,
            connector_store=connector_store,
            production=(env.get("NODE_ENV") or "").strip() == "production",
            outbound_allowed_networks=networks,
        )


def _networks(text: str, problems: list[str]) -> tuple[str, ...]:
    """OUTBOUND_ALLOWED_NETWORKS: comma-separated CIDRs, read as the engine reads them."""
    from engine.outbound import parse_networks

    networks, bad = parse_networks(text)
    problems += [f"OUTBOUND_ALLOWED_NETWORKS={part!r}: expected CIDRs like 10.1.0.0/16" for part in bad]
    return networks


def _connector_store(env: Mapping[str, str], problems: list[str]) -> ConnectorStoreSettings | None:
    """The S3 settings of connector references: the same variables the engine reads."""
    bucket = (env.get("CONNECTORS_S3_BUCKET") or "").strip()
    endpoint = (env.get("AWS_ENDPOINT_URL_S3") or "").strip() or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"AWS_ENDPOINT_URL_S3={endpoint!r}: expected an http(s) URL")
    if not bucket:
        return None
    return ConnectorStoreSettings(
        bucket=bucket,
        region=(env.get("AWS_REGION") or "").strip() or DEFAULT_AWS_REGION,
        endpoint_url=endpoint,
        access_key_id=(env.get("AWS_ACCESS_KEY_ID") or "").strip() or None,
        secret_access_key=(env.get("AWS_SECRET_ACCESS_KEY") or "").strip() or None,
    )


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)
