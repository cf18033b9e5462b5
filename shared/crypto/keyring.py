"""Sealing what a later poll needs to act for a user (the caller's token), under TOKEN_SEALING_KEYS.

TOKEN_SEALING_KEYS holds space-separated keys, newest first, each `<key id>:<base64 of 32 bytes>` or just
the base64 (its id is then derived from it). The first key seals; any listed key opens what it sealed, so
rotation is: prepend a new key, wait until operations sealed with the old one have ended, drop it.
Sealed values are `k1.<key id>.<base64url(nonce | AES-256-GCM ciphertext)>`, bound to the operation id.

`encrypt`/`decrypt` are the bridge's one AES-256-GCM sealer (nonce | ciphertext with an associated-data
binding); shared.crypto.sealing frames callback URLs with them under keys derived from the webhook secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "k1"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
NONCE_BYTES = 12
TAG_BYTES = 16


def encrypt(key: bytes, plaintext: str, associated: bytes) -> bytes:
    """nonce | AES-256-GCM(plaintext) bound to `associated`: opening it needs the same key and binding."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), associated)


def decrypt(key: bytes, raw: bytes, associated: bytes) -> str | None:
    """What `encrypt` sealed, or None when this key and binding do not open `raw` (or it is damaged)."""
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        return None
    try:
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], associated).decode()
    except (InvalidTag, UnicodeDecodeError):
        return None


class KeyringError(ValueError):
    """TOKEN_SEALING_KEYS is malformed (the message names the problem, never the key)."""


class UnsealError(ValueError):
    """A sealed value cannot be opened: damaged, bound to another operation, or its key was retired."""


@dataclass(frozen=True)
class Keyring:
    keys: tuple[tuple[str, bytes], ...]  # (key id, 32-byte key), newest first

    @property
    def configured(self) -> bool:
        return bool(self.keys)

    def seal(self, plaintext: str, bound_to: str) -> str:
        if not self.keys:
            raise KeyringError("TOKEN_SEALING_KEYS is not set")
        kid, key = self.keys[0]
        sealed = encrypt(key, plaintext, f"{kid}|{bound_to}".encode())
        return f"{PREFIX}.{kid}.{base64.urlsafe_b64encode(sealed).decode().rstrip('=')}"

    def unseal(self, value: str, bound_to: str) -> str:
        parts = value.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise UnsealError("not a sealed value")
        kid, blob = parts[1], parts[2]
        key = dict(self.keys).get(kid)
        if key is None:
            raise UnsealError(f"sealed with key {kid!r}, which TOKEN_SEALING_KEYS no longer holds (retired)")
        try:
            raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        opened = decrypt(key, raw, f"{kid}|{bound_to}".encode())
        if opened is None:
            raise UnsealError("the sealed value is damaged or belongs to another operation")
        return opened


def parse_keyring(raw: str, setting: str = "TOKEN_SEALING_KEYS") -> Keyring:
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate(raw.split(), start=1):
        kid, _, encoded = entry.rpartition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise KeyringError(f"{setting} entry {position} is not base64") from None
        if len(key) != 32:
            raise KeyringError(f"{setting} entry {position} must be 32 bytes")
        kid = kid or hashlib.sha256(key).hexdigest()[:12]
        if not _KID.fullmatch(kid) or any(kid == known for known, _ in keys):
            raise KeyringError(f"{setting} entry {position} has a bad or repeated key id")
        keys.append((kid, key))
    return Keyring(tuple(keys))
