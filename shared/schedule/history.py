"""How long finished operations of one kind took: a small bounded summary, its entity encoding and the pure
ETag-merge decision. No I/O, no clock reads: the caller reads and writes the entity.

The summary is the last `SAMPLE_SIZE` durations of the kind (a ring: newest last), each tagged with a short
hash of its operation id so that merging the same finish twice (a redelivered message, a retried write) is a
no-op, plus `count`, how many finishes were ever merged. Quantiles are the exact (linear-interpolation,
"inclusive") quantiles of that sample. A window of recent runs rather than a reservoir over all history: a
kind whose workbook grows gets slower, and the schedule should follow the recent runs.

Keys (Table Storage forbids `/ \\ # ?` and control characters in keys, and the workbook path is the
caller's): PartitionKey = hash of the owner, RowKey = action + "." + (hash of the workbook | "*"). The
specific key (owner + action + workbook) is read first; the general one (owner + action) is the fallback for a
workbook with too few runs. A finish merges into both.

Entity size: at most `SAMPLE_SIZE` entries of "<seconds with one decimal>:<8 hex>" (≤ 18 characters each),
so `Recent` stays under 1.2 K characters, far inside Table Storage's 32 K UTF-16 characters (64 KiB) per
string property (learn.microsoft.com, "Understanding the Table service data model", property types).

Concurrency: a finish reads the entity (with its ETag), merges its duration, and writes with If-Match that
ETag (or inserts when there was none). On 412/409 it reads again and re-merges: `merge_step` is the whole
decision. Two finishes merged in either order give the same multiset of entries (eviction takes the oldest
entries, which both orders agree on), so the quantiles do not depend on the order. What a lost race costs:
after `MAX_MERGE_ATTEMPTS` conflicts the duration is dropped (one point missing from a sample of 64); a
crash between the read and the write drops it too. Nothing else is lost, and a finish merged again (a
redelivered message) is not counted twice while its entry is still among the last SAMPLE_SIZE.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SAMPLE_SIZE = 64
DECIMALS = 1  # durations are kept to a tenth of a second
MAX_DURATION = 7 * 24 * 3600.0
MAX_MERGE_ATTEMPTS = 3
FORMAT_VERSION = 1
MAX_STRING_CHARS = 32 * 1024  # Table Storage: a string property holds at most 64 KiB (UTF-16)
TAG_CHARS = 8


@dataclass(frozen=True)
class Entry:
    seconds: float
    tag: str  # TAG_CHARS hex of the operation id's hash: makes merging one finish idempotent


@dataclass(frozen=True)
class DurationHistory:
    entries: tuple[Entry, ...] = ()  # oldest first, at most SAMPLE_SIZE
    count: int = 0  # finishes ever merged (>= len(entries))

    @property
    def size(self) -> int:
        return len(self.entries)

    def durations(self) -> list[float]:
        return [e.seconds for e in self.entries]

    def add(self, seconds: float, operation_id: str) -> DurationHistory:
        """Merge one finished operation's duration. Merging the same operation again changes nothing."""
        entry = Entry(_clean(seconds), operation_tag(operation_id))
        if any(e.tag == entry.tag for e in self.entries):
            return self
        entries = (*self.entries, entry)[-SAMPLE_SIZE:]
        return DurationHistory(entries, self.count + 1)

    def quantile(self, p: float) -> float:
        """Exact quantile of the sample (linear interpolation between order statistics, like
        statistics.quantiles(method="inclusive")). Raises ValueError on an empty history."""
        return sample_quantile(self.durations(), p)


def sample_quantile(values: Sequence[float], p: float) -> float:
    if not values:
        raise ValueError("no durations")
    if not 0.0 <= p <= 1.0:
        raise ValueError("p must be within [0, 1]")
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def operation_tag(operation_id: str) -> str:
    return hashlib.sha256(operation_id.encode()).hexdigest()[:TAG_CHARS]


def _clean(seconds: float) -> float:
    if not math.isfinite(seconds):
        seconds = 0.0
    return round(min(max(seconds, 0.0), MAX_DURATION), DECIMALS)


# --- keys -------------------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def owner_partition(owner: str) -> str:
    """The PartitionKey of one owner's summaries (every kind of work they ran)."""
    return _digest(owner)


def history_keys(owner: str, action: str, workbook: str | None) -> list[tuple[str, str]]:
    """(PartitionKey, RowKey) to read, most specific first: owner + action + workbook, then owner + action."""
    partition = owner_partition(owner)
    safe_action = "".join(c for c in action if c.isalnum())[:64] or "unknown"
    keys = [(partition, f"{safe_action}.*")]
    if workbook:
        keys.insert(0, (partition, f"{safe_action}.{_digest(workbook)}"))
    return keys


# --- entity encoding ---------------------------------------------------------------------------------


def encode(history: DurationHistory) -> dict[str, Any]:
    """Entity properties (without keys). Every value is small: see the module docstring."""
    recent = ",".join(f"{e.seconds:.1f}:{e.tag}" for e in history.entries)
    if len(recent) > MAX_STRING_CHARS:  # a real check (not `assert`, gone under -O): the sample is bounded
        raise ValueError(f"duration history of {len(recent)} characters exceeds {MAX_STRING_CHARS}")
    return {"Version": FORMAT_VERSION, "Count": history.count, "Recent": recent}


def decode(properties: Mapping[str, Any] | None) -> DurationHistory:
    """The summary an entity holds. An entity this code cannot read (newer version, damage) counts as empty:
    the schedule then falls back to the cold one, which is always safe."""
    if not properties or properties.get("Version") != FORMAT_VERSION:
        return DurationHistory()
    text = properties.get("Recent")
    if not isinstance(text, str) or len(text) > MAX_STRING_CHARS:
        return DurationHistory()
    entries: list[Entry] = []
    for item in text.split(",") if text else []:
        seconds, _, tag = item.partition(":")
        try:
            value = float(seconds)
        except ValueError:
            return DurationHistory()
        if not math.isfinite(value) or len(tag) != TAG_CHARS:
            return DurationHistory()
        entries.append(Entry(_clean(value), tag))
    entries = entries[-SAMPLE_SIZE:]
    count = properties.get("Count")
    count = count if isinstance(count, int) and count >= len(entries) else len(entries)
    return DurationHistory(tuple(entries), count)


# --- the ETag merge ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """What to send: insert when `etag` is None (fails with 409 if someone inserted first), else a
    replace with If-Match `etag` (fails with 412 if someone wrote in between). None from merge_step: nothing
    to write (this finish is already in the summary)."""

    properties: dict[str, Any]
    etag: str | None


def merge_step(current: Mapping[str, Any] | None, etag: str | None, seconds: float, operation_id: str) -> Write | None:
    """One attempt: from the entity as read (None: absent) to the conditional write to make."""
    history = decode(current)
    merged = history.add(seconds, operation_id)
    if merged is history:
        return None
    return Write(encode(merged), etag if current is not None else None)


def retry_after_conflict(attempt: int) -> bool:
    """After the attempt-th (1-based) write failed on 409/412: read again and retry, or drop this point."""
    return attempt < MAX_MERGE_ATTEMPTS


PREFERRED_RUNS = 3  # a workbook's own history is used once it has this many runs


def pick_history(specific: DurationHistory | None, general: DurationHistory | None) -> DurationHistory | None:
    """Which summary plans a new operation: the workbook's own (owner + action + workbook) once it has
    PREFERRED_RUNS runs, else whichever of it and the owner + action one has more runs; None: no history."""
    candidates = [h for h in (specific, general) if h is not None and h.size > 0]
    if not candidates:
        return None
    if specific is not None and specific.size >= PREFERRED_RUNS:
        return specific
    return max(candidates, key=lambda h: h.size)
