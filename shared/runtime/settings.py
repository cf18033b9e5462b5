"""Settings read from the environment (app settings in Azure, local.settings.json Values locally)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.crypto.keyring import Keyring, KeyringError, parse_keyring
from shared.crypto.status_links import LinkSigner, parse_link_keys
from shared.crypto.webhook_keys import WebhookSecretError, parse_webhook_secrets
from shared.delivery.targets import parse_allowed_hosts
from shared.schedule.timing import MAX_OPERATION_TIMEOUT_SECONDS
from shared.wire.origins import origin_of

AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)
STORAGE_SETTING = "AzureWebJobsStorage"
# Numbers in settings are ASCII: `str.isdigit` also accepts "²" (which int() then refuses) and "٣" (which int()
# reads as 3), and float() reads any Unicode decimal digit and "1_000": each a setting nobody meant.
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_ASCII_NAME = re.compile(r"[A-Za-z0-9-]+")
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class StorageConnection:
    """How to reach the storage account: a connection string, or service URIs plus an identity."""

    connection_string: str | None = None
    queue_service_uri: str | None = None
    table_service_uri: str | None = None
    managed_identity_client_id: str | None = None
    blob_service_uri: str | None = None  # big results (shared/storage/result_blobs.py); the host uses it too


@dataclass(frozen=True)
class DelegatedSettings:
    """The bridge API's app registration, which exchanges callers' tokens on their behalf."""

    tenant_id: str
    client_id: str
    client_secret: str | None
    client_certificate: bytes | None  # PEM or PKCS#12; without a secret or certificate the managed identity
    managed_identity_client_id: str | None  # signs a federated client assertion


@dataclass(frozen=True)
class Settings:
    storage: StorageConnection
    graph_base_url: str
    webhook_secrets: tuple[bytes, ...]
    webhook_allow_private_networks: bool
    poll_initial_delay: float
    poll_max_delay: float
    operation_timeout: float
    max_transient_failures: int
    poll_queue: str
    webhook_queue: str
    operations_table: str
    webhook_allowed_hosts: tuple[str, ...] = ()
    auth_enabled: bool = False
    default_owner: str = "default"
    delegated: DelegatedSettings | None = None
    keyring: Keyring = field(default_factory=lambda: Keyring(()))
    status_links: LinkSigner = field(default_factory=lambda: LinkSigner(()))
    webhook_retry_initial_delay: float = 5.0
    webhook_retry_window: float = 86_400.0
    graph_timeout: float = 30.0
    webhook_timeout: float = 15.0
    results_container: str = (
        "operation-results"  # results too big for a Table property (shared/storage/result_blobs.py)
    )
    poll_max_dequeue_count: int = 5  # the host's maxDequeueCount: the last delivery before <queue>-poison
    retention_days: int = 30
    duration_history_table: str = "durations"  # how long finished operations took (shared/schedule/history_store.py)
    # The lane per workbook (shared/lanes/line.py): Excel requests in flight per workbook (0: unbounded, no lane),
    # and how long a holder keeps its slot without renewing it (a dead holder frees it after this).
    workbook_concurrency: int = 1
    lane_lease_seconds: float = 600.0

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86_400.0

    @property
    def graph_origin(self) -> str:
        return origin_of(self.graph_base_url)

    @property
    def graph_scope(self) -> str:
        return f"{self.graph_origin}/.default"


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not _DECIMAL.fullmatch(raw):
        raise SettingsError(f"{name} must be a number of seconds (ASCII digits), got {raw!r}")
    value = float(raw)
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not _WHOLE.fullmatch(raw) or not low <= int(raw) <= high:
        raise SettingsError(f"{name} must be a whole number from {low} to {high} (ASCII digits), got {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _storage_name(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not (3 <= len(value) <= 56) or not _ASCII_NAME.fullmatch(value) or value != value.lower():
        raise SettingsError(f"{name} must be 3-56 lower-case letters, digits or dashes, got {value!r}")
    return value


def storage_connection(env: Mapping[str, str], setting: str = STORAGE_SETTING) -> StorageConnection:
    """Resolve a Functions-style storage connection: a connection string or the `__*` identity form."""
    raw = env.get(setting, "").strip()
    if raw:
        if raw.replace(" ", "").lower() == "usedevelopmentstorage=true":
            raw = AZURITE_CONNECTION_STRING
        return StorageConnection(connection_string=raw)
    account = env.get(f"{setting}__accountName", "").strip()
    queue_uri = env.get(f"{setting}__queueServiceUri", "").strip() or (
        f"https://{account}.queue.core.windows.net" if account else ""
    )
    table_uri = env.get(f"{setting}__tableServiceUri", "").strip() or (
        f"https://{account}.table.core.windows.net" if account else ""
    )
    blob_uri = env.get(f"{setting}__blobServiceUri", "").strip() or (
        f"https://{account}.blob.core.windows.net" if account else ""
    )
    if not queue_uri or not table_uri or not blob_uri:
        raise SettingsError(
            f"{setting} is not set: give a connection string, or {setting}__accountName (or "
            f"{setting}__queueServiceUri, {setting}__tableServiceUri and {setting}__blobServiceUri) for an "
            "identity-based connection"
        )
    client_id = None
    if env.get(f"{setting}__credential", "").strip().lower() == "managedidentity":
        client_id = env.get(f"{setting}__clientId", "").strip() or None
    return StorageConnection(
        queue_service_uri=queue_uri,
        table_service_uri=table_uri,
        managed_identity_client_id=client_id,
        blob_service_uri=blob_uri,
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    base = (env.get("GRAPH_BASE_URL", "").strip() or "https://graph.microsoft.com/v1.0").rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"GRAPH_BASE_URL must be an absolute http(s) URL without query, got {base!r}")
    initial = _number(env, "POLL_INITIAL_DELAY_SECONDS", 1.0, 0.0, 3600.0)
    maximum = _number(env, "POLL_MAX_DELAY_SECONDS", 240.0, 1.0, 240.0)
    if initial > maximum:
        raise SettingsError("POLL_INITIAL_DELAY_SECONDS must not exceed POLL_MAX_DELAY_SECONDS")
    try:
        webhook_secrets = parse_webhook_secrets(env.get("WEBHOOK_SECRET", ""))
        keyring = parse_keyring(env.get("TOKEN_SEALING_KEYS", ""))
        status_links = parse_link_keys(env.get("STATUS_LINK_KEYS", ""))
    except (WebhookSecretError, KeyringError) as exc:
        raise SettingsError(str(exc)) from None
    graph_auth = env.get("GRAPH_AUTH", "").strip().lower() or "app"
    if graph_auth not in ("app", "delegated"):
        raise SettingsError(f"GRAPH_AUTH must be app or delegated, got {graph_auth!r}")
    if graph_auth == "delegated" and not keyring.configured:
        raise SettingsError("GRAPH_AUTH=delegated needs TOKEN_SEALING_KEYS (callers' tokens are sealed with it)")
    return Settings(
        storage=storage_connection(env),
        graph_base_url=base,
        webhook_secrets=webhook_secrets,
        webhook_allow_private_networks=_flag(env, "WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
        poll_initial_delay=initial,
        poll_max_delay=maximum,
        operation_timeout=_number(env, "OPERATION_TIMEOUT_SECONDS", 3600.0, 1.0, MAX_OPERATION_TIMEOUT_SECONDS),
        max_transient_failures=int(_number(env, "POLL_MAX_TRANSIENT_FAILURES", 8, 0, 100)),
        poll_queue=_storage_name(env, "POLL_QUEUE", "operation-polls"),
        webhook_queue=_storage_name(env, "WEBHOOK_QUEUE", "webhook-deliveries"),
        operations_table=_table_name(env.get("OPERATIONS_TABLE", "").strip() or "operations"),
        duration_history_table=_table_name(
            env.get("DURATION_HISTORY_TABLE", "").strip() or "durations", "DURATION_HISTORY_TABLE"
        ),
        webhook_allowed_hosts=parse_allowed_hosts(env.get("WEBHOOK_ALLOWED_HOSTS", "")),
        webhook_retry_initial_delay=_number(env, "WEBHOOK_RETRY_INITIAL_DELAY_SECONDS", 5.0, 1.0, 3600.0),
        webhook_retry_window=_number(env, "WEBHOOK_RETRY_WINDOW_SECONDS", 86_400.0, 1.0, 7 * 24 * 3600.0),
        retention_days=_whole(env, "RETENTION_DAYS", 30, 1, 3650),
        auth_enabled=env.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true",  # set by App Service
        default_owner=_owner(env.get("DEFAULT_OWNER", "").strip() or "default"),
        delegated=_delegated(env) if graph_auth == "delegated" else None,
        keyring=keyring,
        status_links=status_links,
        results_container=_container_name(env.get("RESULTS_CONTAINER", "").strip() or "operation-results"),
        poll_max_dequeue_count=max_dequeue_count(env),
        workbook_concurrency=_whole(env, "WORKBOOK_CONCURRENCY", 1, 0, 100),
        lane_lease_seconds=_number(env, "LANE_LEASE_SECONDS", 600.0, 2.0, 86_400.0),
    )


HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
MAX_DEQUEUE_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"


def max_dequeue_count(env: Mapping[str, str], host_json: Path = HOST_JSON) -> int:
    """The host's maxDequeueCount: the app setting override if set (functions-host-json.md, "Override
    host.json values"), else host.json's extensions.queues.maxDequeueCount, else the default 5."""
    raw = env.get(MAX_DEQUEUE_OVERRIDE, "").strip()
    if not raw:
        try:
            raw = str(json.loads(host_json.read_text(encoding="utf-8"))["extensions"]["queues"]["maxDequeueCount"])
        except (OSError, ValueError, KeyError, TypeError):
            raw = "5"
    if not _WHOLE.fullmatch(raw) or int(raw) < 1:
        raise SettingsError(f"{MAX_DEQUEUE_OVERRIDE} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _container_name(value: str) -> str:
    # Blob container names: 3-63 lower-case letters, digits and single dashes, starting with a letter or digit
    # (learn.microsoft.com, "Naming and referencing containers, blobs, and metadata").
    if (
        not 3 <= len(value) <= 63
        or not _ASCII_NAME.fullmatch(value)
        or value != value.lower()
        or value[0] == "-"
        or value[-1] == "-"
        or "--" in value
    ):
        raise SettingsError(f"RESULTS_CONTAINER must be 3-63 lower-case letters, digits or single dashes: {value!r}")
    return value


def _delegated(env: Mapping[str, str]) -> DelegatedSettings:
    tenant = env.get("DELEGATED_TENANT_ID", "").strip()
    client = env.get("DELEGATED_CLIENT_ID", "").strip()
    if not tenant or not client:
        raise SettingsError("GRAPH_AUTH=delegated needs DELEGATED_TENANT_ID and DELEGATED_CLIENT_ID")
    secret = env.get("DELEGATED_CLIENT_SECRET", "").strip() or None
    certificate = None
    if raw := env.get("DELEGATED_CLIENT_CERTIFICATE", "").strip():  # base64, as Key Vault references give it
        try:
            certificate = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise SettingsError("DELEGATED_CLIENT_CERTIFICATE must be a base64 PEM or PKCS#12 certificate") from None
    identity = env.get("AZURE_CLIENT_ID", "").strip() or None
    return DelegatedSettings(tenant, client, secret, certificate, identity)


def _owner(value: str) -> str:
    if len(value) > 256 or "/" in value:
        raise SettingsError("DEFAULT_OWNER must be at most 256 characters, without '/'")
    return value


def _table_name(value: str, setting: str = "OPERATIONS_TABLE") -> str:
    if not _TABLE_NAME.fullmatch(value):
        raise SettingsError(f"{setting} must be 3-63 letters or digits starting with a letter: {value!r}")
    return value
