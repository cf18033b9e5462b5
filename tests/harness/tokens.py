"""Reading and forging JWTs in tests. The emulator's Entra signs every token the tests present; the one thing it
cannot make is a token it did not sign, so `foreign_signed` forges that (a different key under the same kid)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (tests check signatures separately)."""
    payload = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return data


def foreign_signed(token: str) -> str:
    """`token`'s header and claims signed with a fresh RSA key: a forgery naming the issuer's key id."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(
        jwt_claims(token), key, algorithm="RS256", headers={"kid": jwt.get_unverified_header(token)["kid"]}
    )
