"""execute_operation against the running demo app: every auth type, errors, OAuth2 refresh."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from demo_helpers import API_KEY, OAUTH_PARAMETERS, spec_with_auth

from engine.connectors import oauth2
from engine.connectors.errors import (
    AppAuthFailed,
    AppError,
    AppRateLimited,
    AppUnavailable,
    CredentialsRefreshFailed,
    InvalidOperationInput,
    NotDeclarativeOperation,
)
from engine.connectors.http import execute_operation

CREDENTIALS_BY_AUTH = {
    "api-key": {"apiKey": API_KEY},
    "api-key-query": {"apiKey": API_KEY},
    "bearer": {"apiKey": API_KEY},
    "basic": {"username": "demo", "password": "demo-password"},
}


def connect_oauth2(demo, session) -> dict:
    """Walk the authorization-code flow the way the engine's connection route will."""
    spec = spec_with_auth("oauth2")
    connection = {"baseUrl": demo.url}
    url = oauth2.authorization_url(
        spec,
        redirect_uri="http://engine.test/callback",
        state="st",
        parameters=OAUTH_PARAMETERS,
        connection=connection,
    )
    redirect = session.get(url, allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(redirect.headers["Location"]).query)["code"][0]
    return oauth2.exchange_code(
        spec,
        code=code,
        redirect_uri="http://engine.test/callback",
        credentials=connection,
        parameters=OAUTH_PARAMETERS,
        session=session,
    )


@pytest.mark.parametrize("auth_type", sorted(CREDENTIALS_BY_AUTH))
def test_each_static_auth_type_runs_the_test_operation(demo, session, auth_type):
    spec = spec_with_auth(auth_type)
    credentials = {"baseUrl": demo.url, **CREDENTIALS_BY_AUTH[auth_type]}
    result = execute_operation(spec, spec.test, {}, credentials, session=session, timeout_seconds=5)
    assert result.status == 200 and result.output["authenticated"] is True
    assert API_KEY not in str(result.request_summary) and "demo-password" not in str(result.request_summary)


def test_crud_operations_map_inputs_and_outputs(demo, session, api_key_spec):
    credentials = {"baseUrl": demo.url, "apiKey": API_KEY}

    def run(op: str, **input):
        return execute_operation(api_key_spec, op, input, credentials, session=session, timeout_seconds=5)

    created = run("create-contact", email="ada@example.com", firstName="Ada")
    assert (
        created.status == 201
        and created.output["first_name"] == "Ada"
        and created.output["last_name"] is None
    )
    contact_id = created.output["id"]
    assert run("update-contact", id=contact_id, company="Analytical").output["company"] == "Analytical"
    assert run("get-contact", id=contact_id).output["first_name"] == "Ada"  # PATCH left the other fields
    listed = run("list-contacts", limit=10)
    assert [c["id"] for c in listed.records] == [contact_id] and listed.next_cursor is None
    assert run("delete-contact", id=contact_id).status == 204
    with pytest.raises(AppError) as caught:
        run("get-contact", id=contact_id)
    assert caught.value.app_status == 404 and contact_id in caught.value.message


def test_app_errors_say_what_the_app_said(demo, session, api_key_spec):
    credentials = {"baseUrl": demo.url, "apiKey": API_KEY}
    with pytest.raises(AppError) as caught:
        execute_operation(
            api_key_spec, "create-contact", {"email": "not-an-email"}, credentials, session=session
        )
    error = caught.value
    assert error.app_status == 422 and "email is not an email address" in error.message
    assert error.status == 502 and error.to_document()["error"]["appStatus"] == 422
    with pytest.raises(AppAuthFailed):
        execute_operation(
            api_key_spec, "test-connection", {}, {**credentials, "apiKey": "wrong-key-123"}, session=session
        )
    with pytest.raises(InvalidOperationInput) as invalid:
        execute_operation(api_key_spec, "get-contact", {}, credentials, session=session)
    assert "'id' is a required property" in invalid.value.message
    with pytest.raises(NotDeclarativeOperation):
        execute_operation(api_key_spec, "score-contact", {"id": "c1"}, credentials, session=session)


def test_path_inputs_are_encoded_and_cannot_leave_the_app(demo, session, api_key_spec):
    credentials = {"baseUrl": demo.url, "apiKey": API_KEY}
    with pytest.raises(AppError) as caught:
        execute_operation(api_key_spec, "get-contact", {"id": "../me"}, credentials, session=session)
    assert caught.value.app_status == 404  # /contacts/..%2Fme, not /me


def test_429_surfaces_retry_after_and_500_surfaces_unavailable(demo, session, api_key_spec):
    credentials = {"baseUrl": demo.url, "apiKey": API_KEY}
    demo.admin("faults", fail_next=[429, 500, 503], retry_after_seconds=7)
    with pytest.raises(AppRateLimited) as limited:
        execute_operation(api_key_spec, "test-connection", {}, credentials, session=session)
    assert limited.value.retry_after_seconds == 7.0 and limited.value.app_status == 429
    for status in (500, 503):
        with pytest.raises(AppUnavailable) as unavailable:
            execute_operation(api_key_spec, "test-connection", {}, credentials, session=session)
        assert unavailable.value.app_status == status
    assert execute_operation(api_key_spec, "test-connection", {}, credentials, session=session).status == 200


def test_unreachable_app_is_unavailable(session, api_key_spec):
    with pytest.raises(AppUnavailable) as caught:
        execute_operation(
            api_key_spec,
            "test-connection",
            {},
            {"baseUrl": "http://127.0.0.1:9", "apiKey": API_KEY},
            session=session,
            timeout_seconds=2,
        )
    assert caught.value.app_status == 0


def test_oauth2_connect_and_call(demo, session):
    credentials = connect_oauth2(demo, session)
    assert credentials[oauth2.ACCESS_TOKEN] and credentials[oauth2.REFRESH_TOKEN]
    assert credentials[oauth2.EXPIRES_AT] == pytest.approx(time.time() + 3600, abs=30)
    spec = spec_with_auth("oauth2")
    result = execute_operation(
        spec, "test-connection", {}, credentials, session=session, parameters=OAUTH_PARAMETERS
    )
    assert result.output["method"] == "oauth2"


def test_oauth2_refreshes_before_expiry_and_keeps_the_refresh_token(demo, session):
    spec = spec_with_auth("oauth2")
    credentials = connect_oauth2(demo, session)
    saved: list[dict] = []
    near_expiry = {**credentials, oauth2.EXPIRES_AT: time.time() + 5}  # inside the 30 s margin
    result = execute_operation(
        spec,
        "test-connection",
        {},
        near_expiry,
        session=session,
        parameters=OAUTH_PARAMETERS,
        on_credentials_refreshed=saved.append,
    )
    assert result.status == 200 and len(saved) == 1
    assert saved[0][oauth2.ACCESS_TOKEN] != credentials[oauth2.ACCESS_TOKEN]
    assert saved[0][oauth2.REFRESH_TOKEN] == credentials[oauth2.REFRESH_TOKEN]  # provider sent none: kept
    assert oauth2.refresh_if_needed(saved[0], spec, session, parameters=OAUTH_PARAMETERS) is None


def test_oauth2_retries_once_after_a_401(demo, session):
    spec = spec_with_auth("oauth2")
    credentials = connect_oauth2(demo, session)
    demo.admin("oauth", revoke_access_tokens=True, rotate_refresh_tokens=True)
    saved: list[dict] = []
    result = execute_operation(
        spec,
        "list-contacts",
        {},
        credentials,
        session=session,
        parameters=OAUTH_PARAMETERS,
        on_credentials_refreshed=saved.append,
    )
    assert result.status == 200 and len(saved) == 1
    assert saved[0][oauth2.REFRESH_TOKEN] != credentials[oauth2.REFRESH_TOKEN]  # rotated: the new one kept
    assert demo.state.stats["requests"] == 2  # the 401, then the retry


def test_oauth2_refresh_refused_means_reconnect(demo, session):
    spec = spec_with_auth("oauth2")
    credentials = connect_oauth2(demo, session)
    demo.admin("oauth", revoke_access_tokens=True, revoke_refresh_tokens=True)
    saved: list[dict] = []
    with pytest.raises(CredentialsRefreshFailed) as caught:
        execute_operation(
            spec,
            "test-connection",
            {},
            credentials,
            session=session,
            parameters=OAUTH_PARAMETERS,
            on_credentials_refreshed=saved.append,
        )
    assert saved == [] and caught.value.app_status == 400
    assert credentials[oauth2.REFRESH_TOKEN] not in caught.value.body_excerpt


def test_oauth2_does_not_loop_on_repeated_401(demo, session):
    spec = spec_with_auth("oauth2")
    credentials = connect_oauth2(demo, session)
    demo.admin("oauth", revoke_access_tokens=True, access_token_ttl_seconds=-1)  # new tokens born expired
    saved: list[dict] = []
    with pytest.raises(AppAuthFailed) as caught:
        execute_operation(
            spec,
            "test-connection",
            {},
            {**credentials, oauth2.EXPIRES_AT: time.time() + 3600},
            session=session,
            parameters=OAUTH_PARAMETERS,
            on_credentials_refreshed=saved.append,
        )
    assert caught.value.app_status == 401 and len(saved) == 1


def test_the_demo_connection_summary_has_no_secret(demo, api_key_spec):
    with requests.Session() as session:
        result = execute_operation(
            api_key_spec,
            "list-contacts",
            {"limit": 5},
            {"baseUrl": demo.url, "apiKey": API_KEY},
            session=session,
        )
    assert result.request_summary["headers"]["X-Api-Key"] == "[REDACTED]"
    assert "limit=5" in result.request_summary["url"]
