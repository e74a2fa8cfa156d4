"""Configuration: every bad variable is named, one line each; good ones are read with defaults."""

import pytest

from engine.config import ConfigError, Mode, load_config

GOOD = {
    "MONGO_URI": "mongodb://localhost:27017/engine",
    "REDIS_URI": "redis://localhost:6379/0",
    "SECRET": "s" * 40,
    "ENCRYPTION_SECRET": "e" * 40,
    "IS_API": "1",
}


def problems(env: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    return caught.value.problems


def test_good_configuration_uses_the_product_page_defaults():
    config = load_config(GOOD)
    assert config.port == 5000
    assert config.max_queued_tasks_memory_mb == 1024
    assert config.max_queued_tasks_process_time_seconds == 3000
    assert config.modes == {Mode.API}
    assert config.database_name == "engine"
    assert config.enable_limits is False
    assert config.keepalive_timeout_seconds == 61
    assert config.web_concurrency == 1


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MONGO_URI", "nonsense"),
        ("MONGO_URI", "mongodb://"),
        ("PORT", "70000"),
        ("PORT", "http"),
        ("SECRET", ""),
        ("ENCRYPTION_SECRET", "  "),
        ("REDIS_URI", "localhost:6379"),
        ("ENABLE_LIMITS", "maybe"),
        ("MAX_QUEUED_TASKS_MEMORY_MB", "-5"),
        ("MAX_QUEUED_TASKS_PROCESS_TIME_SECONDS", "ten"),
        ("HEADERS_TIMEOUT_MS", "0"),
        ("NODE_ENV", "staging"),
        ("BASE_URI", "not a url"),
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "two"),
    ],
)
def test_each_bad_variable_is_named(variable, value):
    found = problems({**GOOD, variable: value})
    assert len(found) == 1
    assert found[0].startswith(variable + ":")


def test_all_problems_are_reported_at_once():
    found = problems({"MONGO_URI": "nonsense", "PORT": "0"})
    names = [line.split(":")[0] for line in found]
    assert {"MONGO_URI", "PORT", "REDIS_URI", "SECRET", "ENCRYPTION_SECRET"} <= set(names)


def test_production_requires_the_common_table_and_strong_secrets():
    found = problems({**GOOD, "NODE_ENV": "production", "SECRET": "short"})
    names = {line.split(":")[0] for line in found}
    assert {
        "SECRET",
        "BASE_URI",
        "CUSTOM_CODE_RUNNER_URI",
        "TMP_S3_BUCKET",
        "CONNECTORS_S3_BUCKET",
        "STATIC_S3_BUCKET",
        "BASE_STATIC_URI",
    } <= names


def test_production_allows_one_mode_per_process():
    env = {
        **GOOD,
        "NODE_ENV": "production",
        "IS_ORCHESTRATOR": "1",
        "BASE_URI": "https://api.example.com",
        "CUSTOM_CODE_RUNNER_URI": "http://runner:5000",
        "TMP_S3_BUCKET": "t",
        "CONNECTORS_S3_BUCKET": "c",
        "STATIC_S3_BUCKET": "s",
        "BASE_STATIC_URI": "https://static.example.com",
    }
    found = problems(env)
    assert len(found) == 1 and "only one mode" in found[0]


def test_a_mode_is_required():
    env = {k: v for k, v in GOOD.items() if k != "IS_API"}
    assert any(line.startswith("IS_API, ") for line in problems(env))


def test_redis_cluster_uris_need_a_broker_uri():
    env = {k: v for k, v in GOOD.items() if k != "REDIS_URI"}
    env.update({"REDIS_CLUSTER_URI_1": "redis://a:7000", "REDIS_CLUSTER_URI_2": "redis://b:7000"})
    assert any(line.startswith("REDIS_URI:") for line in problems(env))
    config = load_config({**env, "REDIS_URI": "redis://broker:6379/0"})
    assert config.redis_cluster and config.broker_url == "redis://broker:6379/0"
    assert config.redis_uris[1:] == ("redis://a:7000", "redis://b:7000")


def test_secrets_are_not_in_the_repr():
    assert "s" * 40 not in repr(load_config(GOOD))
