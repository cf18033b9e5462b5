"""Who a request speaks for: the App Service managed-identity endpoint (``/msi/token``) and the check of the
bearer token a Graph request carries (an opaque managed-identity token or a JWT the Entra look-alike signed)."""

from __future__ import annotations

from aiohttp import web

from .entra import GRAPH_RESOURCE, Principal
from .identity import AuthState, token_response
from .server import current_record, origin
from .state import Emulator


class IdentityRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/msi/token", self.token)
        router.add_route("*", "/msi/token/", self.token)

    async def token(self, request: web.Request) -> web.StreamResponse:
        current_record().kind = "token"
        return token_response(request, self.emulator.tokens, self.emulator.identity_header)

    def authenticate(self, request: web.Request) -> tuple[AuthState, Principal | None]:
        """Opaque managed-identity tokens (registry) or JWTs this emulator signed for the Graph resource."""
        authorization = request.headers.get("Authorization")
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value.count(".") == 2:
            here = origin(request)
            audiences = [here, f"{here}/", GRAPH_RESOURCE, f"{GRAPH_RESOURCE}/"]
            state, principal = self.emulator.entra.graph_principal(value, audiences)
            if state == "valid":
                return "valid", principal
            return ("expired" if state == "expired" else "revoked" if state == "revoked" else "invalid"), None
        auth = self.emulator.tokens.check(authorization)
        return auth, (Principal(False, "app:msi") if auth == "valid" else None)
