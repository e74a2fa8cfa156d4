"""`engine token --workspace KEY [--customer ID]`: mint a token for the running stack."""

from __future__ import annotations

from engine.auth.tokens import DEFAULT_TOKEN_TTL_SECONDS, mint_workspace_token
from engine.config import Config


class UnknownWorkspace(SystemExit):
    """No workspace has this key in MONGO_URI's database."""


def mint_for_workspace(
    config: Config,
    workspace_key: str,
    customer_id: str | None = None,
    ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS,
) -> str:
    """A workspace-admin token (or a customer's with customer_id), signed with the workspace's
    secret read from MongoDB and decrypted with ENCRYPTION_SECRET."""
    from engine.domain import tenancy
    from engine.services import Services

    services = Services.from_config(config, app_name="engine-token")
    try:
        found = tenancy.workspace_with_secret(services, workspace_key)
    finally:
        services.close()
    if found is None:
        raise UnknownWorkspace(f"error: no workspace with key {workspace_key!r} in {config.database_name}")
    workspace, secret = found
    return mint_workspace_token(workspace.key, secret, customer_id=customer_id, ttl_seconds=ttl_seconds)


def dev_environ() -> dict[str, str]:
    """MONGO_URI and REDIS_URI of `make run`'s embedded servers, when `make run` has been used here
    (its secrets file exists): so `engine token --workspace KEY` works from a plain shell."""
    from engine.dev.stack import DEV_MONGO_PORT, DEV_REDIS_PORT, load_dev_secrets

    if not load_dev_secrets():
        return {}
    return {
        "MONGO_URI": f"mongodb://127.0.0.1:{DEV_MONGO_PORT}/integration-engine",
        "REDIS_URI": f"redis://127.0.0.1:{DEV_REDIS_PORT}",
    }
