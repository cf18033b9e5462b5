"""Build azure-storage-queue async clients from a Functions ``connection`` setting."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devhost.settings import ConfigurationError, expand_dev_storage, get_setting

logger = logging.getLogger("devhost.storage")


class QueueClients:
    """Creates one QueueServiceClient per connection name and one QueueClient per queue; reuses them."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._services: dict[str, QueueServiceClient] = {}
        self._queues: dict[tuple[str, str], QueueClient] = {}
        self._credentials: list[Any] = []

    def describe(self, connection: str) -> str:
        """Human readable description of how a connection resolves (never includes secrets)."""
        if self._connection_string(connection) is not None:
            return "connection string"
        uri = self._service_uri(connection)
        return f"identity-based ({uri})" if uri else "unset"

    def _connection_string(self, connection: str) -> str | None:
        for name in (connection, f"AzureWebJobs{connection}", f"ConnectionStrings:{connection}"):
            value = get_setting(name, self._environ)
            if value:
                return expand_dev_storage(value)
        return None

    def _service_uri(self, connection: str) -> str | None:
        for suffix in ("queueServiceUri", "serviceUri"):
            value = get_setting(f"{connection}__{suffix}", self._environ)
            if value:
                return value.rstrip("/")
        account = get_setting(f"{connection}__accountName", self._environ)
        if account:
            return f"https://{account}.queue.core.windows.net"
        return None

    def _make_credential(self, connection: str) -> Any:
        from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

        kind = (get_setting(f"{connection}__credential", self._environ) or "").lower()
        client_id = get_setting(f"{connection}__clientId", self._environ)
        credential: Any
        if kind == "managedidentity" and client_id:
            credential = ManagedIdentityCredential(client_id=client_id)
        else:
            credential = DefaultAzureCredential()
        self._credentials.append(credential)
        return credential

    def service_client(self, connection: str) -> QueueServiceClient:
        existing = self._services.get(connection)
        if existing is not None:
            return existing
        conn_str = self._connection_string(connection)
        client: QueueServiceClient
        if conn_str is not None:
            try:
                client = QueueServiceClient.from_connection_string(conn_str)
            except ValueError as exc:
                raise ConfigurationError(f"connection '{connection}': invalid connection string: {exc}") from exc
        else:
            uri = self._service_uri(connection)
            if uri is None:
                raise ConfigurationError(
                    f"storage connection '{connection}' is not configured: set app setting '{connection}' "
                    f"to a connection string, or '{connection}__queueServiceUri' / '{connection}__accountName'"
                )
            client = QueueServiceClient(account_url=uri, credential=self._make_credential(connection))
        self._services[connection] = client
        return client

    async def queue(self, connection: str, queue_name: str, *, create: bool = True) -> QueueClient:
        key = (connection, queue_name)
        existing = self._queues.get(key)
        if existing is not None:
            return existing
        client = self.service_client(connection).get_queue_client(queue_name)
        if create:
            try:
                await client.create_queue()
                logger.info("created queue %s", queue_name)
            except ResourceExistsError:
                pass
            except HttpResponseError as exc:
                logger.warning("could not create queue %s (%s); assuming it exists", queue_name, exc.reason)
        self._queues[key] = client
        return client

    async def close(self) -> None:
        for queue in self._queues.values():
            await queue.close()
        for service in self._services.values():
            await service.close()
        for credential in self._credentials:
            await credential.close()
        self._queues.clear()
        self._services.clear()
        self._credentials.clear()
