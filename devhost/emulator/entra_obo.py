"""The on-behalf-of grant's user assertion: the caller's access token for the middle-tier API, which must be
signed by this emulator, unexpired, addressed to the app presenting it and a user's (not an app's)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .entra_model import ClientApp, EntraError


def check_assertion(public_key: rsa.RSAPublicKey, tenant_id: str, app: ClientApp, assertion: str) -> dict[str, Any]:
    """The user the assertion speaks for (upn, oid, tid, name); EntraError in Entra's words otherwise."""
    audiences = [f"api://{app.client_id}", app.client_id]
    try:
        claims = jwt.decode(
            assertion,
            public_key,
            algorithms=["RS256"],
            options={"require": ["exp", "iat", "aud"], "verify_aud": False, "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise EntraError(
            400, "invalid_grant", 50013, f"Assertion failed signature validation. [Reason - {type(exc).__name__}]"
        ) from exc
    now = time.time()
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now >= exp:
        expiry = dt.datetime.fromtimestamp(float(exp) if isinstance(exp, int | float) else 0, dt.UTC)
        current = dt.datetime.fromtimestamp(now, dt.UTC)
        raise EntraError(
            400,
            "invalid_grant",
            500133,
            "Assertion is not within its valid time range. Ensure that the access token is not expired before "
            "using it for user assertion, or request a new token. Current time: "
            f"{current:%Y-%m-%dT%H:%M:%S.%f}Z, expiry time of assertion {expiry:%Y-%m-%dT%H:%M:%S.%f}Z.",
        )
    if claims.get("aud") not in audiences:
        raise EntraError(
            400,
            "invalid_grant",
            50013,
            "Assertion audience does not match the Client app "
            f"presenting the assertion. The audience in the assertion was '{claims.get('aud')}' "
            f"and the expected audience is '{audiences[0]}' or one of the Application Id URIs of "
            "this application.",
        )
    if claims.get("idtyp") == "app" or (not claims.get("upn") and not claims.get("oid")):
        raise EntraError(400, "invalid_grant", 50013, "Assertion is not a user token.")
    return {
        "upn": claims.get("upn") or claims.get("preferred_username") or claims.get("oid"),
        "oid": claims.get("oid"),
        "tid": claims.get("tid") or tenant_id,
        "name": claims.get("name"),
    }
