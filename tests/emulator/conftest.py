"""Fixtures for the Graph/managed-identity emulator tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE.parents[1]), str(_HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from emulator_harness import RunEmu, make_runner  # noqa: E402


@pytest.fixture
def run_emu() -> RunEmu:
    """``run_emu(async_fn, token_lifetime=...)`` runs ``async_fn(harness)`` against a fresh emulator."""
    return make_runner()
