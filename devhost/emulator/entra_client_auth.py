"""How a confidential client proves itself at the token endpoint: a client secret, or a signed client
assertion (``private_key_jwt``, a registered certificate's key). Raises EntraError in Entra's words."""

from __future__ import annotations

import secrets

import jwt

from .entra_directory import Directory
from .entra_model import CLIENT_ASSERTION_TYPE, ClientApp, EntraError


def authenticate_client(
    directory: Directory, form: dict[str, str], token_url: str, origin: str, tenant: str
) -> ClientApp:
    client_id = form.get("client_id", "")
    assertion = form.get("client_assertion")
    if not client_id and assertion:
        try:
            client_id = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
        except jwt.PyJWTError:
            client_id = ""
    if not client_id:
        raise EntraError(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
        )
    app = directory.clients.get(client_id)
    if app is None:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
        )
    secret = form.get("client_secret")
    if secret is not None:
        if app.secret is None or not secrets.compare_digest(secret.encode(), app.secret.encode()):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent "
                f"in the request is the client secret value, not the client secret ID, for a secret added to "
                f"app '{client_id}'.",
            )
        return app
    if assertion is not None:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise EntraError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
        _verify_client_assertion(app, assertion, token_url, origin, tenant)
        return app
    raise EntraError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )


def _verify_client_assertion(app: ClientApp, assertion: str, token_url: str, origin: str, tenant: str) -> None:
    audiences = [token_url, f"{origin}/{tenant}/oauth2/token", f"{origin}/{tenant}/v2.0"]
    for key in app.public_keys:
        try:
            claims = jwt.decode(
                assertion,
                key,  # type: ignore[arg-type]
                algorithms=["PS256", "RS256"],
                audience=audiences,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise EntraError(
                401, "invalid_client", 700024, "Client assertion is not within its valid time range."
            ) from exc
        except jwt.InvalidAudienceError as exc:
            raise EntraError(
                401,
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented "
                f"assertion audience; expected the token endpoint {token_url}.",
            ) from exc
        except jwt.PyJWTError:
            continue
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise EntraError(
                401,
                "invalid_client",
                700023,
                "Client assertion audience claim does not match Realm issuer "
                "or the iss/sub claims are not the client id.",
            )
        return
    raise EntraError(
        401,
        "invalid_client",
        700027,
        "Client assertion failed signature validation (no registered "
        f"certificate of app '{app.client_id}' verifies it).",
    )
