"""The status-link key is never absent: without STATUS_LINK_KEYS the bridge generates one once and keeps it in its
own storage account.

That is where the Functions host keeps its own function keys (blob storage is its default key store: the setting
AzureWebJobsSecretStorageType in "App settings reference for Azure Functions").

Without a key the `Location` would be the keyed `/api/operations/{id}`, which Logic Apps and Power Automate cannot
poll once function keys are enforced (shared/crypto/status_links.py says why), while the bridge looked healthy. So:

- STATUS_LINK_KEYS set: its keys sign and verify, as before; a key generated earlier (if its blob exists) is kept as
  the last, verify-only key, so status URLs handed out before the setting was added keep working.
- Not set: the key is read from the blob `<OPERATIONS_TABLE>/status-link-key.json` in the private container
  `excel-bridge-secrets`; the first worker that finds none generates 32 random bytes and creates the blob
  insert-only (If-None-Match: *), so workers starting together agree: the losers read the winner's key. A blob
  that cannot be read as a key stops the worker with a SettingsError naming the blob (health answers 503
  `misconfigured`, every request 500 `misconfigured`): never a silent fallback to unsigned links.

The key itself appears nowhere but in that blob: not in logs (the key id only), answers, tables or messages.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import re
import secrets
import time

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient

from shared.crypto.status_links import LinkSigner
from shared.runtime.settings import Settings, SettingsError

log = logging.getLogger(__name__)

CONTAINER = "excel-bridge-secrets"
KEY_BYTES = 32
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def blob_name(settings: Settings) -> str:
    """One key per bridge (its operations table), so bridges sharing an account do not share a key."""
    return f"{settings.operations_table}/status-link-key.json"


async def with_link_key(settings: Settings, container: ContainerClient) -> Settings:
    """`settings` whose status-link signer has a key: STATUS_LINK_KEYS, else the generated one."""
    name = blob_name(settings)
    configured = settings.status_links
    if configured.configured:
        try:
            stored = await _read(container, name)
        except (AzureError, SettingsError):
            log.warning("could not read %s/%s; STATUS_LINK_KEYS alone verifies status URLs", CONTAINER, name)
            return settings
        if stored is None or stored[0] in dict(configured.keys):
            return settings
        return dataclasses.replace(settings, status_links=LinkSigner((*configured.keys, stored)))
    key = await _read(container, name) or await _create(container, name)
    log.info(
        "STATUS_LINK_KEYS is not set: status URLs are signed with the key kept in the storage account "
        "(container %s, blob %s, key id %s); set STATUS_LINK_KEYS to manage keys yourself",
        CONTAINER,
        name,
        key[0],
    )
    return dataclasses.replace(settings, status_links=LinkSigner((key,)))


async def _create(container: ContainerClient, name: str) -> tuple[str, bytes]:
    key = (f"g{secrets.token_hex(4)}", secrets.token_bytes(KEY_BYTES))
    body = json.dumps(
        {"keyId": key[0], "key": base64.b64encode(key[1]).decode(), "createdAt": int(time.time()), "version": 1}
    ).encode()
    try:
        await container.create_container()
    except ResourceExistsError:
        pass
    try:
        await container.upload_blob(
            name, body, overwrite=False, content_settings=ContentSettings(content_type="application/json")
        )
    except ResourceExistsError:  # another worker created it first: use theirs
        stored = await _read(container, name)
        if stored is None:
            raise SettingsError(f"the status-link key {CONTAINER}/{name} exists but cannot be read") from None
        return stored
    log.warning("generated a status-link key (key id %s) and stored it in %s/%s", key[0], CONTAINER, name)
    return key


async def _read(container: ContainerClient, name: str) -> tuple[str, bytes] | None:
    """The stored key, None if there is none; SettingsError if the blob is not a key."""
    try:
        stream = await container.download_blob(name, encoding="utf-8")
        text = str(await stream.readall())
    except ResourceNotFoundError:  # no blob, or no container yet
        return None
    try:
        stored = json.loads(text)
        kid, key = str(stored["keyId"]), base64.b64decode(str(stored["key"]), validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        kid, key = "", b""
    if not _KID.fullmatch(kid) or len(key) != KEY_BYTES:
        raise SettingsError(
            f"the status-link key {CONTAINER}/{name} is damaged: set STATUS_LINK_KEYS, or delete the blob "
            "(a new key is generated; status URLs handed out before stop working)"
        )
    return kid, key
