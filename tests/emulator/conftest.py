"""Fixtures for the Graph/managed-identity emulator tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.emulator.emulator_harness import RunEmu, make_runner


@pytest.fixture(scope="session")
def admin_http() -> Iterator[httpx.Client]:
    """The HTTP client of the admin calls, one for the session."""
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def run_emu(admin_http: httpx.Client) -> RunEmu:
    """``run_emu(async_fn, token_lifetime=...)`` runs ``async_fn(harness)`` against a fresh emulator."""
    return make_runner(admin_http)
