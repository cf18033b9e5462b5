"""Fixtures for the Graph/managed-identity emulator tests."""

from __future__ import annotations

import pytest

from tests.emulator.emulator_harness import RunEmu, make_runner


@pytest.fixture
def run_emu() -> RunEmu:
    """``run_emu(async_fn, token_lifetime=...)`` runs ``async_fn(harness)`` against a fresh emulator."""
    return make_runner()
