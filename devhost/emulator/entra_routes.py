"""The Entra look-alike's HTTP face: instance discovery, the tenant's OpenID configuration, its keys, the token
endpoint, and its admin API under ``/_emulator/entra`` (apps, users, user tokens, lifetimes, revocation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from .admin_routes import admin_json
from .entra import AdminError, EntraError
from .entra_discovery import instance_discovery, openid_configuration
from .recorder import RequestRecord
from .scenarios import ScenarioError
from .server import ADMIN_PREFIX, current_record, graph_error, origin
from .state import Emulator


def _entra_record() -> RequestRecord:
    record = current_record()
    record.kind = "entra"
    return record


def _entra_error(exc: EntraError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status)


class EntraRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.entra = emulator.entra

    def add_admin_to(self, router: web.UrlDispatcher) -> None:
        router.add_put(f"{ADMIN_PREFIX}/entra/clients/{{client}}", self.put_client)
        router.add_put(f"{ADMIN_PREFIX}/entra/users/{{upn}}", self.put_user)
        router.add_post(f"{ADMIN_PREFIX}/entra/users/{{upn}}/token", self.user_token)
        router.add_put(f"{ADMIN_PREFIX}/entra/config", self.put_config)
        router.add_get(f"{ADMIN_PREFIX}/entra/config", self.get_config, allow_head=False)
        router.add_post(f"{ADMIN_PREFIX}/entra/refresh-tokens/revoke", self.revoke_refresh_tokens)

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/common/discovery/instance", self.instance_discovery, allow_head=False)
        router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self.openid_configuration, allow_head=False)
        router.add_get("/{tenant}/discovery/v2.0/keys", self.keys, allow_head=False)
        router.add_route("*", "/{tenant}/oauth2/v2.0/token", self.token)

    # ------------------------------------------------------------------ the token service
    async def openid_configuration(self, request: web.Request) -> web.StreamResponse:
        _entra_record()
        tenant = request.match_info["tenant"]
        if not self.entra.directory.known_tenant(tenant):
            return _entra_error(EntraError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found."))
        return web.json_response(openid_configuration(origin(request), tenant))

    async def instance_discovery(self, request: web.Request) -> web.StreamResponse:
        _entra_record()
        return web.json_response(
            instance_discovery(self.entra.tenant_id, origin(request), request.query.get("authorization_endpoint"))
        )

    async def keys(self, _request: web.Request) -> web.StreamResponse:
        _entra_record()
        return web.json_response(self.entra.keys.jwks())

    async def token(self, request: web.Request) -> web.StreamResponse:
        record = _entra_record()
        if request.method != "POST":
            return _entra_error(EntraError(405, "invalid_request", 900561, "The endpoint only accepts POST."))
        if request.content_type != "application/x-www-form-urlencoded":
            return _entra_error(EntraError(400, "invalid_request", 900144, "The request body must be form-encoded."))
        posted = await request.post()
        form = {key: value for key, value in posted.items() if isinstance(value, str)}
        record.grant_type = form.get("grant_type")
        try:
            body = self.entra.endpoint.token(form, origin(request), request.match_info["tenant"])
        except EntraError as exc:
            return _entra_error(exc)
        response = web.json_response(body)
        response.headers["Cache-Control"] = "no-store, no-cache"
        response.headers["Pragma"] = "no-cache"
        return response

    # ------------------------------------------------------------------ admin
    @staticmethod
    async def _admin(request: web.Request, act: Callable[[Any], dict[str, Any]]) -> web.StreamResponse:
        try:
            return web.json_response(act(await admin_json(request)))
        except (AdminError, ScenarioError) as exc:
            return graph_error(400, "invalidArgument", str(exc))

    async def put_client(self, request: web.Request) -> web.StreamResponse:
        client_id = request.match_info["client"]
        return await self._admin(request, lambda body: self.entra.directory.put_client(client_id, body).to_json())

    async def put_user(self, request: web.Request) -> web.StreamResponse:
        upn = request.match_info["upn"]
        return await self._admin(request, lambda body: self.entra.directory.put_user(upn, body).to_json())

    async def user_token(self, request: web.Request) -> web.StreamResponse:
        upn = request.match_info["upn"]
        here = origin(request)
        return await self._admin(
            request,
            lambda body: {"access_token": self.entra.endpoint.user_token(upn, here, body), "token_type": "Bearer"},
        )

    async def put_config(self, request: web.Request) -> web.StreamResponse:
        def act(body: Any) -> dict[str, Any]:
            self.entra.directory.put_config(body)
            return self.entra.directory.config_json()

        return await self._admin(request, act)

    async def get_config(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self.entra.directory.config_json())

    async def revoke_refresh_tokens(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response({"revoked": self.entra.endpoint.revoke_refresh_tokens()})
