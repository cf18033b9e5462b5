"""The one client of the emulator's admin API (`/_emulator/*`, devhost/emulator/admin_routes.py), for the tests
(tests/harness/emulator.py re-exports it) and the benches alike.

Synchronous (httpx). The subprocess tests call it directly; the in-process emulator tests run their emulator
on a thread of its own (tests/emulator/emulator_harness.py), so their async bodies can call it too. Every
method checks the call succeeded (EmulatorAdminError otherwise); a test of the admin API's own error answers
sends the raw request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx


class EmulatorAdminError(RuntimeError):
    """An admin call answered something other than what it expects."""


@dataclass
class Emulator:
    url: str
    client: httpx.Client

    @property
    def graph(self) -> str:
        return f"{self.url}/v1.0"

    def issuer(self, tenant: str) -> str:
        """The OpenID issuer of `tenant` at this emulator (discovery at `<issuer>/.well-known/...`)."""
        return f"{self.url}/{tenant}/v2.0"

    def admin(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None, expect: int = 200
    ) -> Any:
        """One admin call (`path` below /_emulator); its JSON answer, or None for an empty one."""
        response = self.client.request(
            method, f"{self.url}/_emulator{path}", json=body, params={k: v for k, v in (params or {}).items() if v}
        )
        if response.status_code != expect:
            raise EmulatorAdminError(f"{method} /_emulator{path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    # ------------------------------------------------------------------ Graph side
    def scenario(self, item: str, scenario: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """PUT /_emulator/scenarios/{item}: how the emulator answers for that workbook (fields in `scenario`
        and/or as keywords)."""
        return self.admin("PUT", f"/scenarios/{item}", {**(scenario or {}), **fields})  # type: ignore[no-any-return]

    def delete_scenario(self, item: str) -> None:
        self.admin("DELETE", f"/scenarios/{item}", expect=204)

    def requests(self, item: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """The request log (oldest first), optionally one item's and/or one kind's."""
        return self.admin("GET", "/requests", params={"item": item or "", "kind": kind or ""})  # type: ignore[no-any-return]

    def rows(self, item: str, table: str) -> list[list[Any]]:
        return self.admin("GET", f"/tables/{item}/{table}")["rows"]  # type: ignore[no-any-return]

    def operations(self, item: str | None = None) -> list[dict[str, Any]]:
        return self.admin("GET", "/operations", params={"item": item or ""})  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "/stats")  # type: ignore[no-any-return]

    def config(self, **config: Any) -> dict[str, Any]:
        """PUT /_emulator/config (tokenLifetimeSeconds, strictDelegated); the whole config after it."""
        return self.admin("PUT", "/config", config)  # type: ignore[no-any-return]

    def get_config(self) -> dict[str, Any]:
        return self.admin("GET", "/config")  # type: ignore[no-any-return]

    def revoke_tokens(self) -> int:
        """Revoke every access token issued so far (managed identity and Entra); how many."""
        return int(self.admin("POST", "/tokens/revoke")["revoked"])

    def reset(self) -> None:
        self.admin("POST", "/reset", expect=204)

    # ------------------------------------------------------------------ Entra side
    def entra_client(self, client_id: str, **registration: Any) -> dict[str, Any]:
        """An app registration (secret, apiScopes, appRoles, delegatedScopes, certificates)."""
        return self.admin("PUT", f"/entra/clients/{client_id}", registration)  # type: ignore[no-any-return]

    def entra_user(self, upn: str, **user: Any) -> dict[str, Any]:
        """A user (oid, tid, roles, name)."""
        return self.admin("PUT", f"/entra/users/{upn}", user)  # type: ignore[no-any-return]

    def user_token(
        self,
        upn: str,
        audience: str,
        scopes: list[str] | None = None,
        lifetime: float | None = None,
        roles: list[str] | None = None,
    ) -> str:
        """A signed access token of a registered user for an API (what a signed-in caller presents)."""
        body: dict[str, Any] = {"audience": audience}
        if scopes is not None:
            body["scopes"] = scopes
        if lifetime is not None:
            body["lifetimeSeconds"] = lifetime
        if roles is not None:
            body["roles"] = roles
        return str(self.admin("POST", f"/entra/users/{upn}/token", body)["access_token"])

    def sign_in(
        self,
        upn: str,
        *,
        tenant: str,
        audience: str,
        oid: str | None = None,
        roles: list[str] | None = None,
        lifetime: float = 600,
    ) -> str:
        """Register `upn` in `tenant` (with `oid`) and return its token for `audience` (scope access_as_user)."""
        self.entra_user(upn, tid=tenant, **({"oid": oid} if oid else {}))
        return self.user_token(upn, audience, ["access_as_user"], lifetime, roles)

    def entra_config(self, **config: Any) -> dict[str, Any]:
        """PUT /_emulator/entra/config (accessTokenLifetimeSeconds, refreshTokenLifetimeSeconds)."""
        return self.admin("PUT", "/entra/config", config)  # type: ignore[no-any-return]

    def revoke_refresh_tokens(self) -> int:
        return int(self.admin("POST", "/entra/refresh-tokens/revoke")["revoked"])
