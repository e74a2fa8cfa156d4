"""Redaction of secrets from request/response summaries."""

from __future__ import annotations

from engine.connectors.redact import REDACTED, Redactor, excerpt, is_secret_key, secret_field_names

FIELDS = {
    "type": "object",
    "properties": {
        "subdomain": {"type": "string"},
        "apiKey": {"type": "string", "format": "password"},
        "pin": {"type": "string", "x-secret": True},
    },
}
CREDENTIALS = {
    "subdomain": "acme",
    "apiKey": "k3y-very-secret",
    "pin": "123456789",
    "accessToken": "at-abcdefgh",
    "refreshToken": "rt-abcdefgh",
}


def redactor() -> Redactor:
    return Redactor.for_connection(
        FIELDS, CREDENTIALS, {"clientSecret": "client-secret-xyz", "clientId": "public-id"}
    )


def test_secret_fields_from_schema():
    assert secret_field_names(FIELDS) == {"apiKey", "pin"}


def test_secret_key_names():
    for name in ("Authorization", "api_key", "X-Api-Key", "access_token", "client_secret", "password"):
        assert is_secret_key(name), name
    assert not is_secret_key("email") and not is_secret_key("limit")


def test_headers():
    headers = redactor().headers(
        {
            "Authorization": "Bearer at-abcdefgh",
            "X-Api-Key": "k3y-very-secret",
            "Accept": "application/json",
            "X-Echo": "key is k3y-very-secret",
        }
    )
    assert headers == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Accept": "application/json",
        "X-Echo": f"key is {REDACTED}",
    }


def test_url_query_and_userinfo():
    url = redactor().url("https://user:pw@acme.test/c?api_key=k3y-very-secret&limit=5&q=123456789")
    assert "k3y-very-secret" not in url and "123456789" not in url and "pw@" not in url and "limit=5" in url


def test_documents_by_key_and_by_value():
    document = redactor().document(
        {
            "email": "a@b.test",
            "password": "hunter22",
            "nested": [{"token": "zzz"}, "echo: rt-abcdefgh and client-secret-xyz"],
        }
    )
    assert document == {
        "email": "a@b.test",
        "password": REDACTED,
        "nested": [{"token": REDACTED}, f"echo: {REDACTED} and {REDACTED}"],
    }


def test_non_secret_values_are_kept():
    assert redactor().text("acme public-id") == "acme public-id"


def test_excerpt_truncates_after_redacting():
    text = excerpt({"error": "bad key k3y-very-secret", "pad": "x" * 1000}, redactor(), max_chars=60)
    assert "k3y-very-secret" not in text and text.endswith("...") and len(text) == 63
