"""auth.delegated_tokens: the one place a caller's on-behalf-of token source is made and closed."""

from __future__ import annotations

import asyncio

import pytest

from shared.graph import tokens as auth
from shared.runtime.settings import load_settings

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
DELEGATED = {
    **BASE,
    "GRAPH_AUTH": "delegated",
    "TOKEN_SEALING_KEYS": "k1:" + "A" * 43 + "=",
    "DELEGATED_TENANT_ID": "tenant",
    "DELEGATED_CLIENT_ID": "client",
    "DELEGATED_CLIENT_SECRET": "secret",
}


class Source:
    """A TokenSource that records whether it was closed."""

    def __init__(self) -> None:
        self.closed = 0

    async def token(self) -> str:
        return "t"

    async def refresh(self) -> str:
        return "t"

    async def close(self) -> None:
        self.closed += 1


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, Source]]:
    """Each on-behalf-of source made: (scope, assertion, source)."""
    sources: list[tuple[str, str, Source]] = []

    def on_behalf_of(scope: str, delegated: object, assertion: str) -> Source:
        source = Source()
        sources.append((scope, assertion, source))
        return source

    monkeypatch.setattr(auth, "on_behalf_of", on_behalf_of)
    return sources


def test_the_apps_own_identity_needs_no_token_source(made: list[tuple[str, str, Source]]) -> None:
    async def run() -> list[object]:
        seen = []
        async with auth.delegated_tokens(load_settings(BASE), "a user token") as tokens:  # app mode
            seen.append(tokens)
        async with auth.delegated_tokens(load_settings(DELEGATED), None) as tokens:  # no caller assertion
            seen.append(tokens)
        return seen

    assert asyncio.run(run()) == [None, None]
    assert made == []


def test_a_delegated_step_gets_the_callers_source_and_it_is_closed_after(
    made: list[tuple[str, str, Source]],
) -> None:
    settings = load_settings(DELEGATED)

    async def run() -> object:
        async with auth.delegated_tokens(settings, "the caller's token") as tokens:
            assert made[0][2].closed == 0  # open while the block runs
            return tokens

    tokens = asyncio.run(run())
    [(scope, assertion, source)] = made
    assert tokens is source and assertion == "the caller's token" and scope == settings.graph_scope
    assert source.closed == 1


def test_the_source_is_closed_when_the_step_fails(made: list[tuple[str, str, Source]]) -> None:
    async def run() -> None:
        async with auth.delegated_tokens(load_settings(DELEGATED), "the caller's token"):
            raise RuntimeError("Graph went away")

    with pytest.raises(RuntimeError, match="Graph went away"):
        asyncio.run(run())
    assert made[0][2].closed == 1
