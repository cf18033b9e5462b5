"""Continuation tokens of `GET /api/operations`: where the next page starts, signed, and good only for the list
that issued them.

A token is `p1.<key id>.<base64url payload>.<base64url HMAC-SHA256>`. The payload is the storage position (the owner
index's last row key, or Table Storage's next partition and row keys for a read-all scan) as compact JSON; the MAC
covers the version, the key id, the payload and the list's scope: the kind of list (the caller's own index or the
read-all scan), the caller's owner and the status filter. So a token with one character changed, a position made up
by hand, another owner's token or a token of another filter is refused (TokenRefused, a 400 naming
`continuationToken`) before anything is read or parsed. `top` is not bound: a caller may change the page size.

The MAC keys are derived (HKDF-SHA256, RFC 5869) from the status-link keys (shared/crypto/status_links.py), one per
key with the same id: the first signs, every one verifies, so rotating STATUS_LINK_KEYS rotates these too and a
token signed before a rotation still opens while its key is listed. Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "p1"
MAX_TOKEN_CHARS = 2048  # far above any token issued (a few hundred characters); longer is refused unread
MAX_VALUE_CHARS = 1024  # a position value: a table key is at most 1 KiB
_INFO = b"excel-async-bridge continuation tokens v1"
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

Position = dict[str, str]  # where the next page starts, as the store gave it


class TokenRefused(ValueError):
    """Not a continuation token this bridge issued for this list (the message says why, never a key)."""


def scope(*, reads_all: bool, owner: str, status: str | None) -> str:
    """The list a token belongs to: read-all scan or own index, the caller's owner, the status filter."""
    return json.dumps(["all" if reads_all else "own", owner, status or ""], ensure_ascii=True)


@dataclass(frozen=True)
class PageTokens:
    keys: tuple[tuple[str, bytes], ...]  # (key id, derived 32-byte MAC key), newest first

    def issue(self, position: Mapping[str, str], list_scope: str) -> str:
        if not self.keys:
            raise TokenRefused("no signing key")  # the runtime always has one (shared/runtime/link_key.py)
        kid, key = self.keys[0]
        payload = _b64(json.dumps(dict(position), separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode())
        return f"{VERSION}.{kid}.{payload}.{_mac(key, kid, payload, list_scope)}"

    def open(self, token: str, list_scope: str) -> Position:
        """The position a token holds, if this bridge issued it for this very list; else TokenRefused."""
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise TokenRefused("not a continuation token of this list")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != VERSION or not all(parts[1:]):
            raise TokenRefused("not a continuation token of this list")
        _, kid, payload, mac = parts
        key = dict(self.keys).get(kid)
        if key is None or not set(payload) <= _B64URL:
            raise TokenRefused("not a continuation token of this list")
        if not hmac.compare_digest(mac.encode(), _mac(key, kid, payload, list_scope).encode()):
            raise TokenRefused("not a continuation token of this list")
        return _position(payload)


def _position(payload: str) -> Position:
    """Our own signed payload; still checked, so a key leak or a bug cannot push odd values into a query."""
    try:
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise TokenRefused("not a continuation token of this list") from None
    if not isinstance(value, dict) or not value:
        raise TokenRefused("not a continuation token of this list")
    for name, item in value.items():
        if not isinstance(item, str) or not _scalar_text(name) or not _scalar_text(item):
            raise TokenRefused("not a continuation token of this list")
    return value


def _scalar_text(text: str) -> bool:
    """Unicode scalar values only (no lone surrogate, which no query can carry), no control characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 0 < len(text) <= MAX_VALUE_CHARS and text.isprintable()


def _mac(key: bytes, kid: str, payload: str, list_scope: str) -> str:
    message = f"{VERSION}\n{kid}\n{payload}\n{list_scope}".encode()
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@lru_cache(maxsize=8)
def page_tokens(link_keys: tuple[tuple[str, bytes], ...]) -> PageTokens:
    """The token keys derived from the status-link keys (same ids, same order)."""
    return PageTokens(tuple((kid, _derive(key)) for kid, key in link_keys))


def _derive(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key)
