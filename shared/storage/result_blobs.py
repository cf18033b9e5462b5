"""Results too big for a Table entity live in Blob Storage; the record points to them.

Table Storage holds at most 64 KiB (32 K UTF-16 characters) in a string property and 1 MiB in an entity
(learn.microsoft.com, "Understanding the Table service data model"). A result whose JSON is longer than
TABLE_RESULT_MAX_CHARS is written to a blob `<operation id>/<random>.json` in RESULTS_CONTAINER first,
then the record is written with `ResultBlob` = that name and an empty `ResultJson` (write-ahead: the blob
exists before anything points to it; a write that loses a race leaves an unreferenced blob under the
operation's prefix, which the retention purge removes with the operation).

The largest result the bridge keeps and serves inline (GET, webhooks) is MAX_RESULT_BYTES (1 MiB of JSON).
A bigger result is not stored: the operation still ends `succeeded` (Graph did the work) with `result`
null and `error.code` = `resultTooLarge`, which says how big it was and that Graph has it.
"""

from __future__ import annotations

import uuid

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient


class ResultBlobs:
    """The results container: one blob per stored big result, named under its operation's id."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    @property
    def container(self) -> ContainerClient:
        return self._container

    async def close(self) -> None:
        await self._container.close()

    async def ensure_container(self) -> None:
        try:
            await self._container.create_container()
        except ResourceExistsError:
            pass

    async def put(self, operation_id: str, text: str) -> str:
        name = f"{operation_id}/{uuid.uuid4().hex}.json"
        await self._container.upload_blob(
            name, text.encode(), overwrite=False, content_settings=ContentSettings(content_type="application/json")
        )
        return name

    async def read(self, name: str) -> str | None:
        """The blob's text, or None if it is gone (purged with its operation)."""
        try:
            stream = await self._container.download_blob(name, encoding="utf-8")
        except ResourceNotFoundError:
            return None
        return str(await stream.readall())

    async def delete_operation(self, operation_id: str) -> int:
        """Delete every blob of an operation (for the retention purge); returns how many."""
        count = 0
        async for blob in self._container.list_blobs(name_starts_with=f"{operation_id}/"):
            try:
                await self._container.delete_blob(blob.name)
                count += 1
            except ResourceNotFoundError:
                pass
        return count
