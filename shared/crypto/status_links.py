"""Signed status URLs: a credential scoped to one operation's status and cancel, carried in the URL.

Logic Apps re-sends only the action's `authentication` when it follows `Location` (custom headers such as
`x-functions-key` are dropped: Azure/logicapps#611), and Power Automate sends no credential to a status URL at
all (MicrosoftDocs/architecture-center#4307). A function key has no other place than the URL, and a function key
in a URL opens every operation and every route. So the bridge hands out a *valet key* instead: the URL
`<api>/status/{id}?se=<expiry>&sig=<key id>.<HMAC-SHA256>` opens exactly one operation's status (GET) and
cancel (DELETE), until it expires, and nothing else. The route is anonymous at the host; this module decides.

STATUS_LINK_KEYS holds space-separated keys, newest first, each `<key id>:<base64 of 32 bytes>`. The first
signs; every listed key verifies, so rotation is: prepend a new key, wait until links signed with the old one
are no longer used, drop it. Without the setting the bridge generates a key once and keeps it in its storage
account (shared/runtime/link_key.py): a bridge always signs its status URLs. Pure: no I/O, no clock reads
(callers pass `now`).

A URL is read strictly: `se` in canonical digits (no leading zero: `se=0176...` and `se=176...` would otherwise be
one signature for two URLs), and `se` and `sig` each at most once (a second value is refused, not ignored).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from shared.crypto.keyring import parse_keyring

ROUTE = "status"
LINK_LIFETIME_SECONDS = 30 * 24 * 3600  # past the operation's own deadline; see docs/api.md
_VERSION = "status-link-v1"
EXPIRY_PARAM, SIGNATURE_PARAM = "se", "sig"  # the signed URL's query: ?se=<expiry>&sig=<key id>.<signature>
EXPIRY_MAX_DIGITS = 12
EXPIRY_PATTERN = rf"^[1-9][0-9]{{0,{EXPIRY_MAX_DIGITS - 1}}}$"  # canonical: no leading zero
_EXPIRY = re.compile(EXPIRY_PATTERN.strip("^$"))


class LinkRefused(Exception):
    """The URL's credential does not open this operation: missing, malformed, expired or not ours."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LinkSigner:
    keys: tuple[tuple[str, bytes], ...]  # (key id, 32-byte key), newest first

    @property
    def configured(self) -> bool:
        return bool(self.keys)

    def signature(self, operation_id: str, expires: int) -> str:
        if not self.keys:  # the runtime always has a key (shared/runtime/link_key.py); never a silent fallback
            raise LinkRefused("no status-link key")
        kid, key = self.keys[0]
        return f"{kid}.{_mac(key, operation_id, expires)}"

    def query(self, operation_id: str, expires: int) -> str:
        return urlencode({EXPIRY_PARAM: str(expires), SIGNATURE_PARAM: self.signature(operation_id, expires)})

    def verify(self, operation_id: str, expires: str | None, sig: str | None, now: float) -> None:
        """Raise LinkRefused unless `se`/`sig` open `operation_id` at `now`."""
        if not self.keys:
            raise LinkRefused("no status-link key")
        if not expires or not sig:
            raise LinkRefused("the URL carries no credential (se and sig)")
        if not _EXPIRY.fullmatch(expires):
            raise LinkRefused("se must be a whole number of seconds, without leading zeros")
        kid, _, mac = sig.partition(".")
        key = dict(self.keys).get(kid)
        if key is None or not hmac.compare_digest(mac.encode(), _mac(key, operation_id, int(expires)).encode()):
            raise LinkRefused("the signature does not match this operation")
        if int(expires) <= now:
            raise LinkRefused("this status URL has expired")


def link_params(query: str) -> tuple[str | None, str | None]:
    """`se` and `sig` from a URL's raw query; LinkRefused when either is given more than once (which one would be
    meant? hosts differ: devhost takes the first, the Functions host joins them with a comma)."""
    values = parse_qs(query, keep_blank_values=True)
    expires, sig = values.get(EXPIRY_PARAM, []), values.get(SIGNATURE_PARAM, [])
    if len(expires) > 1 or len(sig) > 1:
        raise LinkRefused("se and sig may each appear once")
    return (expires[0] if expires else None), (sig[0] if sig else None)


def _mac(key: bytes, operation_id: str, expires: int) -> str:
    digest = hmac.new(key, f"{_VERSION}\n{operation_id}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def parse_link_keys(raw: str) -> LinkSigner:
    return LinkSigner(parse_keyring(raw, setting="STATUS_LINK_KEYS").keys)


def link_expiry(created_at: float, operation_timeout: float) -> int:
    """When an operation's signed URL stops working: its deadline plus LINK_LIFETIME_SECONDS (whole seconds)."""
    return int(created_at + operation_timeout) + LINK_LIFETIME_SECONDS
