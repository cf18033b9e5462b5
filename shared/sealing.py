"""Sealing small secrets (callback URLs carry signatures, e.g. Logic Apps' `sig=`) before they are stored.

AES-256-GCM under a key derived (HKDF-SHA256) from each webhook secret; the first secret seals,
every configured one may open, so rotating WEBHOOK_SECRET keeps older records readable.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "s1."
_INFO = b"excel-async-bridge/sealed-callback-url/v1"


class SealingError(ValueError):
    pass


def _key(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)


def seal(plaintext: str, secrets: tuple[bytes, ...], associated: str) -> str:
    if not secrets:
        raise SealingError("no key to seal with")
    nonce = os.urandom(12)
    sealed = AESGCM(_key(secrets[0])).encrypt(nonce, plaintext.encode(), associated.encode())
    return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()


def unseal(token: str, secrets: tuple[bytes, ...], associated: str) -> str:
    if not token.startswith(PREFIX):
        raise SealingError("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(token[len(PREFIX):])
    except (binascii.Error, ValueError):
        raise SealingError("the sealed value is damaged") from None
    if len(raw) < 12 + 16:
        raise SealingError("the sealed value is damaged")
    for secret in secrets:
        try:
            return AESGCM(_key(secret)).decrypt(raw[:12], raw[12:], associated.encode()).decode()
        except (InvalidTag, UnicodeDecodeError):
            continue
    raise SealingError("no configured key opens this value (was WEBHOOK_SECRET rotated away?)")
