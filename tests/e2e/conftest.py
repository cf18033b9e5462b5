"""The e2e fixtures (azurite, emulator, receiver, make_bridge, bridge, log_dir) are the session's, in
tests/conftest.py. `BridgeFactory` and `restart` live in tests/e2e/harness.py; they are named here too for the
tests that import them from this module."""

from __future__ import annotations

from .harness import BridgeFactory, restart

__all__ = ["BridgeFactory", "restart"]
