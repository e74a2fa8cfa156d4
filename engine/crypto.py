"""Encryption at rest of secrets (workspace secrets, credentials, integration parameters).

AES-256-GCM (authenticated: a tampered ciphertext fails to decrypt) with a key derived from
ENCRYPTION_SECRET by HKDF-SHA256. Each value gets a fresh 96-bit random nonce. The stored form is
a small JSON-able dict so it sits inside a MongoDB document:

    {"v": 1, "alg": "A256GCM", "nonce": "<base64>", "ct": "<base64>"}

`aad` (associated data, e.g. a connection id) binds a ciphertext to its owner: a ciphertext copied
into another document does not decrypt there.
"""

from __future__ import annotations

import base64
import functools
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ENCRYPTION_VERSION = 1
ALGORITHM = "A256GCM"
KEY_BYTES = 32
NONCE_BYTES = 12
_HKDF_SALT = b"integration-engine/encryption/v1"
_HKDF_INFO = b"aes-256-gcm key for stored secrets"


class DecryptionFailed(Exception):
    """A stored secret could not be decrypted: wrong ENCRYPTION_SECRET or tampered data."""


@functools.lru_cache(maxsize=8)
def _aead(encryption_secret: str) -> AESGCM:
    if not encryption_secret:
        raise ValueError("ENCRYPTION_SECRET is empty")
    key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_HKDF_SALT, info=_HKDF_INFO).derive(
        encryption_secret.encode("utf-8")
    )
    return AESGCM(key)


def encrypt_bytes(encryption_secret: str, plaintext: bytes, *, aad: str | None = None) -> dict[str, Any]:
    """Encrypt bytes; return the storable envelope."""
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = _aead(encryption_secret).encrypt(nonce, plaintext, aad.encode() if aad else None)
    return {
        "v": ENCRYPTION_VERSION,
        "alg": ALGORITHM,
        "nonce": base64.b64encode(nonce).decode(),
        "ct": base64.b64encode(ciphertext).decode(),
    }


def decrypt_bytes(encryption_secret: str, envelope: dict[str, Any], *, aad: str | None = None) -> bytes:
    """Decrypt an envelope made by encrypt_bytes; DecryptionFailed when it cannot be."""
    try:
        if envelope.get("v") != ENCRYPTION_VERSION or envelope.get("alg") != ALGORITHM:
            raise DecryptionFailed(f"unknown encryption envelope version {envelope.get('v')!r}")
        nonce = base64.b64decode(envelope["nonce"])
        ciphertext = base64.b64decode(envelope["ct"])
        return _aead(encryption_secret).decrypt(nonce, ciphertext, aad.encode() if aad else None)
    except (InvalidTag, KeyError, ValueError, TypeError, AttributeError) as error:
        raise DecryptionFailed(DecryptionFailed.__doc__) from error


def encrypt_json(encryption_secret: str, value: Any, *, aad: str | None = None) -> dict[str, Any]:
    """Encrypt a JSON-serialisable value."""
    return encrypt_bytes(encryption_secret, json.dumps(value, separators=(",", ":")).encode("utf-8"), aad=aad)


def decrypt_json(encryption_secret: str, envelope: dict[str, Any], *, aad: str | None = None) -> Any:
    """Decrypt a value encrypted by encrypt_json."""
    return json.loads(decrypt_bytes(encryption_secret, envelope, aad=aad))
