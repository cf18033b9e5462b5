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

    def patch_scenario(self, item: str, scenario: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        """PATCH /_emulator/scenarios/{item}: set some scenario fields (switches), keep the others and what is left
        of the fault queues."""
        return self.admin("PATCH", f"/scenarios/{item}", {**(scenario or {}), **fields})  # type: ignore[no-any-return]

    def rows(self, item: str, table: str, offset: int | None = None, limit: int | None = None) -> list[list[Any]]:
        """A table's rows exactly as stored (all of them, or `limit` from `offset`)."""
        return self.table(item, table, offset, limit)["rows"]  # type: ignore[no-any-return]

    def table(self, item: str, table: str, offset: int | None = None, limit: int | None = None) -> dict[str, Any]:
        """GET /_emulator/tables/{item}/{table}: ``{"rows", "count" (all rows), "offset"}``."""
        params = {"offset": "" if offset is None else str(offset), "limit": "" if limit is None else str(limit)}
        return self.admin("GET", f"/tables/{item}/{table}", params=params)  # type: ignore[no-any-return]

    def row_count(self, item: str, table: str) -> int:
        return int(self.table(item, table, 0, 0)["count"])

    def declare_table(
        self,
        item: str,
        table: str,
        columns: list[str],
        *,
        table_id: str | None = None,
        rows: list[list[Any]] | None = None,
        sheet: str | None = None,
        origin: str | None = None,
    ) -> dict[str, Any]:
        """PUT /_emulator/tables/{item}/{table}: declare (replace) a table with its column names (and optionally
        its id, rows, sheet and top-left cell); its description."""
        body: dict[str, Any] = {"columns": columns}
        for name, value in (("id", table_id), ("rows", rows), ("sheet", sheet), ("origin", origin)):
            if value is not None:
                body[name] = value
        return self.admin("PUT", f"/tables/{item}/{table}", body)["table"]  # type: ignore[no-any-return]

    def tables(self, item: str) -> list[dict[str, Any]]:
        """The item's tables: name, id, columns, declared, rowCount, sheet, address."""
        return self.admin("GET", f"/tables/{item}")  # type: ignore[no-any-return]

    def drop_table(self, item: str, table: str) -> None:
        self.admin("DELETE", f"/tables/{item}/{table}", expect=204)

    def inject_write_fault(
        self,
        item: str,
        fault: str,
        count: int = 1,
        action: str | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Queue a write fault for the item's next `count` writes (of `action`, or any): ``applyThen504``,
        ``applyThen500``, ``applyThenDrop`` (applied, then that answer) or ``insertDeleteConflict`` (409, nothing
        applied). The item's queue after it."""
        body: dict[str, Any] = {"fault": fault, "count": count, "action": action}
        if error is not None:
            body["error"] = dict(error)
        return self.admin("POST", f"/scenarios/{item}/write-faults", body)["writeFaults"]  # type: ignore[no-any-return]

    def sessions(self, item: str | None = None) -> list[dict[str, Any]]:
        """Every workbook session (item, id, persistChanges, state, createdAt, lastUsedAt, expiresAt)."""
        return self.admin("GET", "/sessions", params={"item": item or ""})  # type: ignore[no-any-return]

    def expire_sessions(self, item: str, session_id: str | None = None) -> list[str]:
        """Expire one session of the item (or all of them) now; the ids expired."""
        body = {} if session_id is None else {"sessionId": session_id}
        return self.admin("POST", f"/sessions/{item}/expire", body)["expired"]  # type: ignore[no-any-return]

    def counters(self, item: str | None = None) -> dict[str, Any]:
        """Requests, bytesIn/bytesOut, dropped, rows/cells written and read, faults fired: one item's, or
        ``{"total", "items"}``."""
        return self.admin("GET", "/counters", params={"item": item or ""})  # type: ignore[no-any-return]

    def faults(self, item: str | None = None) -> list[dict[str, Any]]:
        """Every fault the emulator fired (seq of the request, time, item, action, fault), oldest first."""
        return self.admin("GET", "/faults", params={"item": item or ""})  # type: ignore[no-any-return]

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
