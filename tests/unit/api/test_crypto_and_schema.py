"""engine/crypto.py and engine/api/schema.py without servers."""

from __future__ import annotations

import pytest

from engine import crypto
from engine.api.schema import check
from engine.errors import ValidationFailed


def test_round_trip_and_fresh_nonce():
    a = crypto.encrypt_json("k" * 20, {"apiKey": "s3cret"}, aad="con_1")
    b = crypto.encrypt_json("k" * 20, {"apiKey": "s3cret"}, aad="con_1")
    assert a["nonce"] != b["nonce"] and "s3cret" not in str(a)
    assert crypto.decrypt_json("k" * 20, a, aad="con_1") == {"apiKey": "s3cret"}


@pytest.mark.parametrize("secret, aad", [("other-secret", "con_1"), ("k" * 20, "con_2"), ("k" * 20, None)])
def test_wrong_key_or_owner_fails(secret, aad):
    envelope = crypto.encrypt_json("k" * 20, [1, 2], aad="con_1")
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt_json(secret, envelope, aad=aad)


def test_tampered_ciphertext_fails():
    envelope = crypto.encrypt_json("k" * 20, "x")
    envelope["ct"] = envelope["ct"][:-4] + ("AAAA" if not envelope["ct"].endswith("AAAA") else "BBBB")
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt_json("k" * 20, envelope)


def test_check_names_nested_field_and_can_hide_values():
    schema = {
        "type": "object",
        "required": ["a"],
        "properties": {"a": {"type": "object", "properties": {"b": {"type": "string", "pattern": "^x"}}}},
    }
    with pytest.raises(ValidationFailed) as missing:
        check(schema, {}, prefix="input")
    assert missing.value.field == "input.a"
    with pytest.raises(ValidationFailed) as hidden:
        check(schema, {"a": {"b": "top-secret"}}, prefix="credentials", quote_values=False)
    assert hidden.value.field == "credentials.a.b" and "top-secret" not in hidden.value.message
