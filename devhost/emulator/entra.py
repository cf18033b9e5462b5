"""An Entra ID (v2.0 endpoint) look-alike: its parts put together.

Tokens are RS256 JWTs signed with a key generated when the emulator starts (`entra_keys`). The directory
(`entra_directory`) holds the app registrations, users and lifetimes the admin API sets; the token endpoint
(`entra_grants`, with `entra_client_auth` and the on-behalf-of assertion in `entra_obo`) issues tokens;
`entra_discovery` answers the discovery documents. Refresh tokens are opaque and kept in memory (only their
SHA-256). Nothing here ever logs or returns a secret it was given.
"""

from __future__ import annotations

from .entra_directory import Directory
from .entra_grants import TokenEndpoint
from .entra_keys import SigningKey
from .entra_model import (
    DEFAULT_TENANT_ID,
    GRAPH_RESOURCE,
    AdminError,
    EntraError,
    Principal,
    resource_of,
)

__all__ = [
    "DEFAULT_TENANT_ID",
    "GRAPH_RESOURCE",
    "AdminError",
    "EntraError",
    "EntraService",
    "Principal",
    "resource_of",
]


class EntraService:
    """State of the emulated tenant(s): signing key, directory (apps, users, lifetimes), refresh tokens."""

    def __init__(self, tenant_id: str = DEFAULT_TENANT_ID) -> None:
        self.keys = SigningKey()
        self.directory = Directory(tenant_id)
        self.endpoint = TokenEndpoint(self.directory, self.keys)

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    def reset(self) -> None:
        self.directory.reset()
        self.endpoint.reset()
        self.keys.reset()

    def graph_principal(self, token: str, graph_audiences: list[str]) -> tuple[str, Principal | None]:
        """Validate a JWT presented to Graph: ('valid', principal) or ('expired'|'revoked'|'invalid', None)."""
        return self.keys.graph_principal(token, graph_audiences)
