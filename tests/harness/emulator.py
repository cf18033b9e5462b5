"""The emulator's admin client for the tests: the one in devhost/emulator_client.py (the benches use it too)."""

from __future__ import annotations

from devhost.emulator_client import Emulator, EmulatorAdminError

__all__ = ["Emulator", "EmulatorAdminError"]
