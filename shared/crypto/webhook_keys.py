"""The webhook signing keys and signatures: parsing WEBHOOK_SECRET (Standard Webhooks `whsec_<base64>`) and the
`webhook-signature` header over the exact bytes sent. Pure, no I/O, so the settings can parse the secret without
importing the delivery (and aiohttp)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

# bandit B105 (hardcoded password) is a false positive here: "whsec_" is the format prefix, not a secret.
SECRET_PREFIX = "whsec_"  # noqa: S105  # nosec B105


class WebhookSecretError(ValueError):
    pass


def parse_webhook_secrets(raw: str) -> tuple[bytes, ...]:
    """`whsec_<base64>` secrets, space separated (several while rotating); the prefix is optional."""
    keys: list[bytes] = []
    for item in raw.split():
        encoded = item[len(SECRET_PREFIX) :] if item.startswith(SECRET_PREFIX) else item
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSecretError("WEBHOOK_SECRET must be whsec_<base64>; one entry is not base64") from None
        if len(key) < 16:
            raise WebhookSecretError("WEBHOOK_SECRET keys must be at least 16 bytes (24 base64 characters)")
        keys.append(key)
    return tuple(keys)


def sign(keys: tuple[bytes, ...], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: one `v1,<base64 HMAC-SHA256>` per key, space separated."""
    payload = f"{msg_id}.{timestamp}.".encode() + body
    signatures = ["v1," + base64.b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode() for key in keys]
    return " ".join(signatures)
