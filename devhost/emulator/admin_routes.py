"""The emulator's own admin API under ``/_emulator`` (never Graph's): scenarios per workbook item, reset,
configuration, token revocation, the request log, statistics, operations and table contents."""

from __future__ import annotations

from aiohttp import web

from .admin_json import admin_json
from .scenarios import ScenarioError, ScenarioState, parse_config, parse_scenario
from .server import ADMIN_PREFIX, graph_error, not_found
from .state import Emulator

__all__ = ["AdminRoutes", "admin_json"]

# The queues a PATCH keeps (what is left of them) unless it gives the field anew.
_QUEUES = (
    ("startFaults", "start_faults"),
    ("operationFaults", "operation_faults"),
    ("resultFaults", "result_faults"),
    ("writeFaults", "write_faults"),
)


class AdminRoutes:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_put(f"{ADMIN_PREFIX}/scenarios/{{item}}", self.put_scenario)
        router.add_get(f"{ADMIN_PREFIX}/scenarios/{{item}}", self.get_scenario)
        router.add_delete(f"{ADMIN_PREFIX}/scenarios/{{item}}", self.delete_scenario)
        router.add_patch(f"{ADMIN_PREFIX}/scenarios/{{item}}", self.patch_scenario)
        router.add_post(f"{ADMIN_PREFIX}/reset", self.reset)
        router.add_put(f"{ADMIN_PREFIX}/config", self.put_config)
        router.add_get(f"{ADMIN_PREFIX}/config", self.get_config, allow_head=False)
        router.add_post(f"{ADMIN_PREFIX}/tokens/revoke", self.revoke_tokens)
        router.add_get(f"{ADMIN_PREFIX}/requests", self.requests, allow_head=False)
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

    async def patch_scenario(self, request: web.Request) -> web.StreamResponse:
        """Change some fields of the item's scenario (the default one when it has none), keep the rest: what is
        left of its fault queues, its generators' draws so far (unless the field that seeds them is given)."""
        item_id = request.match_info["item"]
        old = self.emulator.scenarios.get(item_id)
        try:
            changes = await admin_json(request)
            if not isinstance(changes, dict):
                raise ScenarioError("a scenario patch must be a JSON object")
            base = old.scenario.to_json() if old is not None else {}
            merged = {**base, **changes}
            if merged.get("runningSeconds") is not None and ("duration" in changes or "actionDurations" in changes):
                merged.pop("runningSeconds")  # the patch's duration replaces the old runningSeconds
            scenario = parse_scenario(merged)
        except ScenarioError as exc:
            return graph_error(400, "invalidArgument", str(exc))
        state = ScenarioState.create(scenario)
        if old is not None:
            for name, attr in _QUEUES:
                if name not in changes:
                    setattr(state, attr, getattr(old, attr))
            if not {"duration", "actionDurations"} & set(changes):
                state.rngs = old.rngs
            if "writeFaultRate" not in changes:
                state.fault_rng = old.fault_rng
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
