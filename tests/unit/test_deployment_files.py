"""compose.yaml and the Procfile describe the processes the code actually runs."""

from __future__ import annotations

import re

import yaml

from engine.config import MODE_VARIABLES, Mode, load_config
from tests.conftest import REPO_ROOT

COMMON_VARIABLES = {
    "NODE_ENV",
    "BASE_URI",
    "CUSTOM_CODE_RUNNER_URI",
    "TMP_S3_BUCKET",
    "CONNECTORS_S3_BUCKET",
    "STATIC_S3_BUCKET",
    "BASE_STATIC_URI",
    "REDIS_URI",
    "SECRET",
    "ENCRYPTION_SECRET",
    "MONGO_URI",
    "PORT",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "ENABLE_LIMITS",
}


def compose() -> dict:
    text = (REPO_ROOT / "compose.yaml").read_text()
    # Substitute ${VAR:?message} as docker compose would, with a value.
    return yaml.safe_load(
        re.sub(
            r"\$\{(\w+):\?[^}]*\}",
            lambda m: f"{m.group(1).lower()}-value-0123456789abcdefghijklmnopqrstuv",
            text,
        )
    )


def test_compose_names_every_process_and_store():
    services = compose()["services"]
    assert {
        "api",
        "instant-tasks-worker",
        "queued-tasks-worker",
        "orchestrator",
        "custom-code-runner",
        "mongo",
        "redis",
        "minio",
    } <= set(services)
    assert services["mongo"]["image"].startswith("mongo")
    assert services["redis"]["image"].startswith("redis")
    assert services["minio"]["image"].startswith("minio/")
    assert services["custom-code-runner"]["command"] == ["engine", "sandbox"]


def test_each_engine_service_configuration_is_valid_and_selects_its_mode():
    services = compose()["services"]
    expected = {
        "api": Mode.API,
        "instant-tasks-worker": Mode.INSTANT_WORKER,
        "queued-tasks-worker": Mode.QUEUED_WORKER,
        "orchestrator": Mode.ORCHESTRATOR,
    }
    for name, mode in expected.items():
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        assert COMMON_VARIABLES <= set(env), name
        config = load_config(env)
        assert config.is_production and config.modes == {mode}, name


def test_procfile_has_one_type_per_mode_plus_the_runner():
    lines = dict(
        line.split(":", 1) for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line.strip()
    )
    assert set(lines) == {"api", "instant", "queued", "orchestrator", "sandbox"}
    for variable in MODE_VARIABLES.values():
        assert sum(variable + "=1" in command for command in lines.values()) == 1
    assert lines["sandbox"].strip() == "engine sandbox"
