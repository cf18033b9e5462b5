"""Where Graph tokens come from. One small seam: `TokenSource.token(refresh=...)`.

- GRAPH_AUTH=app: the app's own identity through azure-identity's DefaultAzureCredential (managed identity in
  Azure; the emulator's App Service identity endpoint locally). One source per worker.
- GRAPH_AUTH=delegated: the caller's token exchanged on the user's behalf (azure-identity
  OnBehalfOfCredential) by the bridge API's app registration, whose own credential is a client secret or,
  without one, the managed identity as a federated client assertion. One source per operation step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import DefaultAzureCredential, OnBehalfOfCredential

from shared.runtime.settings import DelegatedSettings, Settings


class TokenSource(Protocol):
    async def token(self, *, refresh: bool = False) -> str:
        """A bearer token for Graph; `refresh=True` after a 401 must not hand back the cached one."""
        ...

    async def close(self) -> None: ...


class DelegatedCredentialError(Exception):
    """The user's credential cannot give a Graph token any more; `code` is the bridge's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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


FEDERATION_SCOPE = "api://AzureADTokenExchange/.default"


def on_behalf_of(scope: str, delegated: DelegatedSettings, user_assertion: str) -> CredentialTokenSource:
    """A token source acting for the user whose access token (for the bridge's API) is `user_assertion`."""

    def factory() -> AsyncTokenCredential:
        if delegated.client_secret:
            return OnBehalfOfCredential(
                delegated.tenant_id,
                delegated.client_id,
                client_secret=delegated.client_secret,
                user_assertion=user_assertion,
            )
        if delegated.client_certificate:
            return OnBehalfOfCredential(
                delegated.tenant_id,
                delegated.client_id,
                client_certificate=delegated.client_certificate,
                user_assertion=user_assertion,
            )
        identity = _federation_identity(delegated.managed_identity_client_id)

        def assertion() -> str:
            # The managed identity, as a federated credential of the app registration. azure-identity calls
            # this synchronously; the sync credential caches its token (about a day), so it rarely blocks.
            return str(identity.get_token(FEDERATION_SCOPE).token)

        return OnBehalfOfCredential(
            delegated.tenant_id, delegated.client_id, client_assertion_func=assertion, user_assertion=user_assertion
        )

    return DelegatedTokenSource(scope, factory)


@contextlib.asynccontextmanager
async def delegated_tokens(settings: Settings, assertion: str | None) -> AsyncIterator[TokenSource | None]:
    """The one place a caller's token source is made and closed: for one start or one poll step of a delegated
    operation, on behalf of the user whose token (for the bridge's API) is `assertion`, closed when the block
    ends however it ends. None (the app's own identity) without GRAPH_AUTH=delegated or without an assertion."""
    if settings.delegated is None or assertion is None:
        yield None
        return
    tokens = on_behalf_of(settings.graph_scope, settings.delegated, assertion)
    try:
        yield tokens
    finally:
        await tokens.close()


@functools.cache
def _federation_identity(client_id: str | None) -> SyncManagedIdentityCredential:
    return SyncManagedIdentityCredential(client_id=client_id)


class DelegatedTokenSource(CredentialTokenSource):
    """Turns Entra's refusals into DelegatedCredentialError (never echoing tokens)."""

    async def token(self, *, refresh: bool = False) -> str:
        try:
            return await super().token(refresh=refresh)
        except ClientAuthenticationError as exc:
            text = str(exc)
            if "AADSTS500133" in text or "expired" in text.lower():
                raise DelegatedCredentialError(
                    "delegatedCredentialExpired",
                    "The caller's token has expired, so Graph cannot be called on their behalf any more "
                    "(operations must finish within the caller's token lifetime).",
                ) from None
            raise DelegatedCredentialError(
                "delegatedCredentialRejected",
                "Entra ID refused to exchange the caller's token (consent, scopes or the app's credential).",
            ) from None
