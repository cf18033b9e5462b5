"""Sealing small secrets (callback URLs carry signatures, e.g. Logic Apps' `sig=`) before they are stored.

AES-256-GCM under a key derived (HKDF-SHA256) from each webhook secret; the first secret seals,
every configured one may open, so rotating WEBHOOK_SECRET keeps older records readable.
The AES-GCM itself is shared.crypto.keyring's (`encrypt`/`decrypt`); this module frames it: `s1.<base64url>`.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.crypto.keyring import NONCE_BYTES, TAG_BYTES, decrypt, encrypt

PREFIX = "s1."
_INFO = b"excel-async-bridge/sealed-callback-url/v1"


class SealingError(ValueError):
    pass


def _key(secret: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)


def seal(plaintext: str, secrets: tuple[bytes, ...], associated: str) -> str:
    if not secrets:
        raise SealingError("no key to seal with")
    return PREFIX + base64.urlsafe_b64encode(encrypt(_key(secrets[0]), plaintext, associated.encode())).decode()


def unseal(token: str, secrets: tuple[bytes, ...], associated: str) -> str:
    if not token.startswith(PREFIX):
        raise SealingError("not a sealed value")
    try:
        raw = base64.urlsafe_b64decode(token[len(PREFIX) :])
    except (binascii.Error, ValueError):
        raise SealingError("the sealed value is damaged") from None
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SealingError("the sealed value is damaged")
    for secret in secrets:
        opened = decrypt(_key(secret), raw, associated.encode())
        if opened is not None:
            return opened
    raise SealingError("no configured key opens this value (was WEBHOOK_SECRET rotated away?)")
