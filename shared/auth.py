"""Where Graph tokens come from. One small seam: `TokenSource.token(refresh=...)`.

Today: the app's own identity through azure-identity's DefaultAzureCredential (managed identity in
Azure; the emulator's App Service identity endpoint locally). Delegated tokens will plug in here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential


class TokenSource(Protocol):
    async def token(self, *, refresh: bool = False) -> str:
        """A bearer token for Graph; `refresh=True` after a 401 must not hand back the cached one."""
        ...

    async def close(self) -> None: ...


class CredentialTokenSource:
    """Wraps an azure-identity async credential. A refresh replaces the credential, bypassing its cache."""

    def __init__(self, scope: str, factory: Callable[[], AsyncTokenCredential] | None = None) -> None:
        self._scope = scope
        self._factory = factory or (lambda: DefaultAzureCredential(exclude_interactive_browser_credential=True))
        self._credential: AsyncTokenCredential = self._factory()
        self._lock = asyncio.Lock()

    async def token(self, *, refresh: bool = False) -> str:
        if refresh:
            async with self._lock:
                old, self._credential = self._credential, self._factory()
            await old.close()
        access = await self._credential.get_token(self._scope)
        return access.token

    async def close(self) -> None:
        await self._credential.close()
