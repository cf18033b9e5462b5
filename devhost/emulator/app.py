"""The emulator's aiohttp application: its state and the route table, one group per module.

`server` (plumbing: request context, log, Graph's error envelope), `admin_routes` (``/_emulator``),
`entra_routes` (the Entra look-alike and its admin), `identity_routes` (``/msi/token`` and the Graph token
check), `graph_routes` (Graph's workbook API: `workbook_routes` for the writes, `operation_routes` for the
long-running operation answers).
"""

from __future__ import annotations

from aiohttp import web

from . import DEFAULT_IDENTITY_HEADER, DEFAULT_TOKEN_LIFETIME
from .admin_routes import AdminRoutes
from .admin_workbook_routes import AdminWorkbookRoutes
from .entra import DEFAULT_TENANT_ID
from .entra_routes import EntraRoutes
from .graph_routes import GraphRoutes
from .identity_routes import IdentityRoutes
from .server import ADMIN_PREFIX, fault_response, graph_error, middleware
from .state import Emulator

__all__ = ["ADMIN_PREFIX", "EMULATOR_KEY", "Emulator", "build_app", "fault_response", "graph_error"]

EMULATOR_KEY = web.AppKey("emulator", Emulator)

# The largest body the emulator reads (aiohttp's default is 1 MiB). Graph's own request limit (about 5 MB on Excel
# for the web) is modelled by the scenario's requestPayloadLimitBytes, off by default; this bound only keeps the
# emulator from reading without end, and lets benches append ~4 MiB chunks and seed large tables.
MAX_BODY_BYTES = 64 * 1024 * 1024


def build_app(
    identity_header: str = DEFAULT_IDENTITY_HEADER,
    token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
    tenant_id: str = DEFAULT_TENANT_ID,
) -> web.Application:
    """Build the emulator application (state lives in ``app[EMULATOR_KEY]``)."""
    emulator = Emulator(identity_header, token_lifetime, tenant_id)
    app = web.Application(
        middlewares=[middleware(emulator.recorder, emulator.finished)], client_max_size=MAX_BODY_BYTES
    )
    app[EMULATOR_KEY] = emulator
    router = app.router
    identity = IdentityRoutes(emulator)
    entra = EntraRoutes(emulator)
    # Order matters: the admin API first (with its own 404), then the fixed Entra and identity paths, and
    # Graph last, since it takes every path no other group claimed.
    AdminRoutes(emulator).add_to(router)
    AdminWorkbookRoutes(emulator).add_to(router)
    entra.add_admin_to(router)
    AdminRoutes.add_fallback(router)
    identity.add_to(router)
    entra.add_to(router)
    GraphRoutes(emulator, identity).add_to(router)
    return app
