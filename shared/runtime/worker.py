"""Clients created once per worker process and reused by every invocation."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.data.tables.aio import TableClient
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential
from azure.storage.blob.aio import ContainerClient
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.delivery.resolver import PinnedResolver
from shared.delivery.targets import OutboundPolicy
from shared.graph.client import GraphClient
from shared.graph.tokens import CredentialTokenSource, TokenSource
from shared.lanes.store import LaneStore
from shared.operations.store import OperationStore
from shared.runtime.link_key import CONTAINER as LINK_KEY_CONTAINER
from shared.runtime.link_key import with_link_key
from shared.runtime.settings import Settings, SettingsError, StorageConnection, load_settings
from shared.schedule.history_store import HistoryStore
from shared.schedule.timing import Timing
from shared.storage.queues import DeliveryQueue, PollQueue
from shared.storage.result_blobs import ResultBlobs

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    http: aiohttp.ClientSession
    tokens: TokenSource
    graph: GraphClient
    store: OperationStore
    polls: PollQueue
    deliveries: DeliveryQueue
    timing: Timing
    webhook_http: aiohttp.ClientSession
    resolver: PinnedResolver
    outbound: OutboundPolicy
    history: HistoryStore | None = (
        None  # DURATION_HISTORY_TABLE: the learned poll schedule (shared/schedule/learning.py)
    )
    lanes: LaneStore | None = None  # the lane per workbook (shared/lanes/admission.py); None: WORKBOOK_CONCURRENCY=0

    async def close(self) -> None:
        if self.history is not None:
            await self.history.close()
        await self.http.close()
        await self.webhook_http.close()
        await self.tokens.close()
        await self.store.close()
        await self.polls.close()
        await self.deliveries.close()


def _storage_credential(conn: StorageConnection) -> AsyncTokenCredential:
    if conn.managed_identity_client_id:
        return ManagedIdentityCredential(client_id=conn.managed_identity_client_id)
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


def _clients(settings: Settings) -> tuple[TableClient, QueueClient, QueueClient, ContainerClient]:
    """The operations table, the two queues and the results container, from a connection string or an
    identity (the same one for all: AzureWebJobsStorage__*)."""
    conn = settings.storage
    encode, decode = TextBase64EncodePolicy(), TextBase64DecodePolicy()  # host.json messageEncoding: base64
    names = (settings.poll_queue, settings.webhook_queue)
    if conn.connection_string:
        table = TableClient.from_connection_string(conn.connection_string, table_name=settings.operations_table)
        polls, deliveries = (
            QueueClient.from_connection_string(
                conn.connection_string, name, message_encode_policy=encode, message_decode_policy=decode
            )
            for name in names
        )
        container = ContainerClient.from_connection_string(conn.connection_string, settings.results_container)
        return table, polls, deliveries, container
    if not (conn.table_service_uri and conn.queue_service_uri and conn.blob_service_uri):  # not `assert`: -O
        raise SettingsError(
            "AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__accountName "
            "(or __tableServiceUri, __queueServiceUri and __blobServiceUri)"
        )
    credential = _storage_credential(conn)
    table = TableClient(endpoint=conn.table_service_uri, table_name=settings.operations_table, credential=credential)
    polls, deliveries = (
        QueueClient(
            conn.queue_service_uri,
            name,
            credential=credential,
            message_encode_policy=encode,
            message_decode_policy=decode,
        )
        for name in names
    )
    container = ContainerClient(conn.blob_service_uri, settings.results_container, credential=credential)
    return table, polls, deliveries, container


def queue_client(settings: Settings, name: str) -> QueueClient:
    """Another queue of the app's account (the poison queues), reached as the others are."""
    conn = settings.storage
    encode, decode = TextBase64EncodePolicy(), TextBase64DecodePolicy()
    if conn.connection_string:
        return QueueClient.from_connection_string(
            conn.connection_string, name, message_encode_policy=encode, message_decode_policy=decode
        )
    if not conn.queue_service_uri:  # a real check: `assert` is gone under -O
        raise SettingsError("AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__queueServiceUri")
    return QueueClient(
        conn.queue_service_uri,
        name,
        credential=_storage_credential(conn),
        message_encode_policy=encode,
        message_decode_policy=decode,
    )


def table_client(settings: Settings, name: str) -> TableClient:
    """Another table of the app's account (the duration history), reached as the operations table is."""
    conn = settings.storage
    if conn.connection_string:
        return TableClient.from_connection_string(conn.connection_string, table_name=name)
    if not conn.table_service_uri:  # a real check: `assert` is gone under -O
        raise SettingsError("AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__tableServiceUri")
    return TableClient(endpoint=conn.table_service_uri, table_name=name, credential=_storage_credential(conn))


def container_client(settings: Settings, name: str) -> ContainerClient:
    """Another blob container of the app's account (the status-link key's), reached as the results are."""
    conn = settings.storage
    if conn.connection_string:
        return ContainerClient.from_connection_string(conn.connection_string, name)
    if not conn.blob_service_uri:  # a real check: `assert` is gone under -O
        raise SettingsError("AzureWebJobsStorage: set a connection string, or AzureWebJobsStorage__blobServiceUri")
    return ContainerClient(conn.blob_service_uri, name, credential=_storage_credential(conn))


def outbound_policy(settings: Settings) -> OutboundPolicy:
    return OutboundPolicy(settings.webhook_allow_private_networks, settings.webhook_allowed_hosts)


async def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or load_settings()
    http = aiohttp.ClientSession(headers={"User-Agent": "excel-async-bridge/0.1"})
    tokens = CredentialTokenSource(settings.graph_scope)
    table, polls, deliveries, container = _clients(settings)
    policy = outbound_policy(settings)
    resolver = PinnedResolver(policy)
    # Webhooks get their own session: no shared headers, names resolved (and checked) by the pinned resolver.
    webhook_http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit_per_host=8),
        headers={"User-Agent": "excel-async-bridge-webhooks/1"},
    )
    runtime = Runtime(
        settings=settings,
        http=http,
        tokens=tokens,
        graph=GraphClient(http, tokens, settings.graph_base_url, settings.graph_timeout),
        store=OperationStore(table, settings.retention_seconds, ResultBlobs(container)),
        polls=PollQueue(polls, settings.operation_timeout),  # finite TTLs: shared/operations/retention.py
        deliveries=DeliveryQueue(deliveries, settings.webhook_retry_window),
        timing=Timing(
            settings.poll_initial_delay,
            settings.poll_max_delay,
            settings.operation_timeout,
            settings.max_transient_failures,
        ),
        webhook_http=webhook_http,
        resolver=resolver,
        outbound=policy,
        history=HistoryStore(table_client(settings, settings.duration_history_table)),
        lanes=LaneStore(table) if settings.workbook_concurrency > 0 else None,
    )
    try:
        await runtime.store.ensure_table()
        if runtime.history is not None:
            await runtime.history.ensure_table()
        if runtime.store.results is not None:
            await runtime.store.results.ensure_container()
        await runtime.polls.ensure_queue()
        await runtime.deliveries.ensure_queue()
    except Exception:
        log.warning(
            "could not create the table, queues or container (they may already exist or lack permission)", exc_info=True
        )
    try:  # the status-link key is never absent (shared/runtime/link_key.py): no key, no runtime
        async with container_client(settings, LINK_KEY_CONTAINER) as keys:
            runtime.settings = await with_link_key(settings, keys)
    except BaseException:
        log.error("could not get the status-link key (STATUS_LINK_KEYS or the storage account); not starting")
        await runtime.close()
        raise
    return runtime


_runtime: Runtime | None = None
_lock: asyncio.Lock | None = None


async def get_runtime() -> Runtime:
    """The worker's runtime, built on first use inside the worker's event loop."""
    global _runtime, _lock
    if _runtime is not None:
        return _runtime
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _runtime is None:
            _runtime = await build_runtime()
    return _runtime
