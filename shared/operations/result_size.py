"""How big a result the bridge keeps, and where: inline in the record, in a blob, or not at all. Pure: no I/O.

Table Storage holds at most 64 KiB (32 K UTF-16 characters) in a string property and 1 MiB in an entity
(learn.microsoft.com, "Understanding the Table service data model"): a result whose JSON is longer than
TABLE_RESULT_MAX_CHARS goes to a blob (shared/storage/result_blobs.py). The largest result the bridge keeps and
serves inline (GET, webhooks) is MAX_RESULT_BYTES (1 MiB of JSON). A bigger result is not stored: the operation
still ends `succeeded` (Graph did the work) with `result` null and `error.code` = `resultTooLarge`, which says how
big it was and that Graph has it.
"""

from __future__ import annotations

import json
from typing import Any

TABLE_RESULT_MAX_CHARS = 30_000  # under 32 K UTF-16 characters, with room for nothing else to matter
MAX_RESULT_BYTES = 1024 * 1024


def result_json(result: Any) -> str:
    """The stored form of a result (as records.to_entity writes it: ASCII, so characters = UTF-16 units)."""
    return json.dumps(result, separators=(",", ":"))


def needs_blob(text: str) -> bool:
    return len(text) > TABLE_RESULT_MAX_CHARS


def bounded(result: Any, error: dict[str, Any] | None) -> tuple[Any, dict[str, Any] | None]:
    """The result and error to store: a result over MAX_RESULT_BYTES is replaced by a resultTooLarge error."""
    if result is None:
        return result, error
    size = len(result_json(result).encode())
    if size <= MAX_RESULT_BYTES:
        return result, error
    return None, {
        "code": "resultTooLarge",
        "message": f"Graph's result is {size} bytes of JSON, more than the {MAX_RESULT_BYTES} bytes the "
        "bridge stores and serves; Graph did the work; read the result from Graph itself.",
    }
