"""The emulator's own admin API under ``/_emulator`` (never Graph's): scenarios per workbook item, reset,
configuration, token revocation, the request log, statistics, operations and table contents."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .scenarios import ScenarioError, ScenarioState, parse_config, parse_scenario
from .server import ADMIN_PREFIX, graph_error, not_found
from .state import Emulator


async def admin_json(request: web.Request) -> Any:
    """An admin request's JSON body ({} when empty); ScenarioError when it is not JSON."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ScenarioError(f"body is not valid JSON: {exc}") from exc


class AdminRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_put(f"{ADMIN_PREFIX}/scenarios/{{item}}", self.put_scenario)
        router.add_get(f"{ADMIN_PREFIX}/scenarios/{{item}}", self.get_scenario)
        router.add_delete(f"{ADMIN_PREFIX}/scenarios/{{item}}", self.delete_scenario)
        router.add_post(f"{ADMIN_PREFIX}/reset", self.reset)
        router.add_put(f"{ADMIN_PREFIX}/config", self.put_config)
        router.add_get(f"{ADMIN_PREFIX}/config", self.get_config, allow_head=False)
        router.add_post(f"{ADMIN_PREFIX}/tokens/revoke", self.revoke_tokens)
        router.add_get(f"{ADMIN_PREFIX}/requests", self.requests, allow_head=False)
        router.add_get(f"{ADMIN_PREFIX}/tables/{{item}}/{{table}}", self.table, allow_head=False)
        router.add_get(f"{ADMIN_PREFIX}/stats", self.stats, allow_head=False)
        router.add_get(f"{ADMIN_PREFIX}/operations", self.list_operations, allow_head=False)

    @staticmethod
    def add_fallback(router: web.UrlDispatcher) -> None:
        """After every admin group: any other ``/_emulator`` path is a 404 (never a Graph request)."""
        router.add_route("*", ADMIN_PREFIX + "/{tail:.*}", not_found)

    async def put_scenario(self, request: web.Request) -> web.StreamResponse:
        item_id = request.match_info["item"]
        try:
            scenario = parse_scenario(await admin_json(request))
        except ScenarioError as exc:
            return graph_error(400, "invalidArgument", str(exc))
        state = ScenarioState.create(scenario)
        self.emulator.scenarios[item_id] = state
        return web.json_response({"item": item_id, "scenario": state.to_json()})

    async def get_scenario(self, request: web.Request) -> web.StreamResponse:
        item_id = request.match_info["item"]
        state = self.emulator.scenarios.get(item_id)
        if state is None:
            return graph_error(404, "itemNotFound", f"No scenario for item '{item_id}'.")
        return web.json_response({"item": item_id, "scenario": state.to_json()})

    async def delete_scenario(self, request: web.Request) -> web.StreamResponse:
        self.emulator.scenarios.pop(request.match_info["item"], None)
        return web.Response(status=204)

    async def reset(self, _request: web.Request) -> web.StreamResponse:
        self.emulator.reset()
        return web.Response(status=204)

    async def put_config(self, request: web.Request) -> web.StreamResponse:
        try:
            update = parse_config(await admin_json(request))
        except ScenarioError as exc:
            return graph_error(400, "invalidArgument", str(exc))
        if update.token_lifetime is not None:
            self.emulator.tokens.lifetime = update.token_lifetime
        if update.strict_delegated is not None:
            self.emulator.strict_delegated = update.strict_delegated
        return await self.get_config(request)

    async def get_config(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"tokenLifetimeSeconds": self.emulator.tokens.lifetime, "strictDelegated": self.emulator.strict_delegated}
        )

    async def revoke_tokens(self, _request: web.Request) -> web.StreamResponse:
        revoked = self.emulator.tokens.revoke_all() + self.emulator.entra.keys.revoke_access_tokens()
        return web.json_response({"revoked": revoked})

    async def requests(self, request: web.Request) -> web.StreamResponse:
        recorder = self.emulator.recorder
        return web.json_response(recorder.list(item=request.query.get("item"), kind=request.query.get("kind")))

    async def stats(self, _request: web.Request) -> web.StreamResponse:
        operations = self.emulator.operations
        operations.settle()
        phases: dict[str, int] = {}
        for op in operations.all():
            phases[op.phase] = phases.get(op.phase, 0) + 1
        return web.json_response({**self.emulator.recorder.stats(), "operations": phases})

    async def list_operations(self, request: web.Request) -> web.StreamResponse:
        operations = self.emulator.operations
        operations.settle()
        return web.json_response([op.to_json() for op in operations.all(request.query.get("item"))])

    async def table(self, request: web.Request) -> web.StreamResponse:
        self.emulator.operations.settle()
        rows = self.emulator.workbooks.peek_rows(request.match_info["item"], request.match_info["table"])
        return web.json_response({"rows": rows})
