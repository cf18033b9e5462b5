"""Reading an admin request's JSON body (every ``/_emulator`` route group uses it)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .scenario_parts import ScenarioError


async def admin_json(request: web.Request) -> Any:
    """An admin request's JSON body ({} when empty); ScenarioError when it is not JSON."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ScenarioError(f"body is not valid JSON: {exc}") from exc
