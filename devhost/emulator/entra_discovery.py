"""The Entra look-alike's discovery documents: the tenant's OpenID configuration and instance discovery
(what MSAL reads before it asks for a token)."""

from __future__ import annotations

from typing import Any

from .entra_model import GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN


def openid_configuration(origin: str, tenant: str) -> dict[str, Any]:
    base = f"{origin}/{tenant}"
    return {
        "issuer": f"{base}/v2.0",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "jwks_uri": f"{origin}/{tenant}/discovery/v2.0/keys",
        "userinfo_endpoint": f"{origin}/oidc/userinfo",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "upn", "roles"],
        "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN],
        "request_uri_parameter_supported": False,
        "tenant_region_scope": "EU",
        "cloud_instance_name": "emulator",
        "cloud_graph_host_name": origin.split("://", 1)[-1],
        "msgraph_host": origin.split("://", 1)[-1],
        "rbac_url": origin,
    }


def instance_discovery(default_tenant: str, origin: str, authorization_endpoint: str | None) -> dict[str, Any]:
    tenant = default_tenant
    if authorization_endpoint:
        path = authorization_endpoint.split("://", 1)[-1].split("/")
        if len(path) > 1 and path[1]:
            tenant = path[1]
    host = origin.split("://", 1)[-1]
    return {
        "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }
