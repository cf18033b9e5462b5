"""Microsoft Graph workbook + App Service managed-identity emulator with fault injection.

Run it with ``python -m devhost.emulator --port PORT`` or build it in-process with
:func:`devhost.emulator.app.build_app`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_IDENTITY_HEADER", "DEFAULT_TOKEN_LIFETIME"]

DEFAULT_IDENTITY_HEADER = "devhost-identity-header"
DEFAULT_TOKEN_LIFETIME = 3600.0
