"""The runner reads the engine's S3 variables for `connector` references, and only with a bucket."""

from __future__ import annotations

import pytest

from sandbox.errors import SettingsError
from sandbox.settings import RunnerSettings


def test_no_bucket_means_no_connector_store():
    settings = RunnerSettings.from_env({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert settings.connector_store is None


def test_the_store_uses_the_engine_variables_and_never_shows_its_secret():
    settings = RunnerSettings.from_env(
        {
            "CONNECTORS_S3_BUCKET": "connectors",
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "key-id",
            "AWS_SECRET_ACCESS_KEY": "very-secret-value",
        }
    )
    store = settings.connector_store
    assert store is not None
    assert (store.bucket, store.region, store.endpoint_url, store.access_key_id) == (
        "connectors",
        "us-east-1",
        "http://127.0.0.1:9000",
        "key-id",
    )
    assert store.secret_access_key == "very-secret-value"
    assert "very-secret-value" not in repr(settings)


def test_a_bad_endpoint_is_a_settings_error_naming_it():
    with pytest.raises(SettingsError) as caught:
        RunnerSettings.from_env({"CONNECTORS_S3_BUCKET": "c", "AWS_ENDPOINT_URL_S3": "minio:9000"})
    assert any(problem.startswith("AWS_ENDPOINT_URL_S3=") for problem in caught.value.problems)
