"""How long finished operations of one kind took: a small bounded sample, its entity encoding and its keys. No
I/O, no clock reads: the caller reads the entity and writes one slot per finish.

The sample is at most `SAMPLE_SIZE` durations, one per *slot*. A finished operation goes into the slot its id
hashes to (`slot_of`), replacing what that slot held. The sampling rule depends only on the operation's id and
on the order of the finishes, never on the duration. So the sample is unbiased, and it leans to the recent
runs: a slot keeps the latest finish that hashed to it (about the last 64-300 finishes of a busy kind).
Quantiles are the exact (linear-interpolation, "inclusive") quantiles of that sample. The learned plan reads the
runs in the order they finished (`Entry.at`, whole Unix seconds).

Writing a slot is one Insert Or Merge (upsert) of two properties, `Version` and `S<slot>`. It is unconditional: no
read first, no ETag, so two finishes at once never conflict and none is dropped. Merge leaves the other
properties alone (learn.microsoft.com, "Insert Or Merge Entity": it "updates an existing entity, or inserts a new
entity if it doesn't exist"; "Merge Entity": it "does not replace the existing entity"). Finishing the same
operation twice writes the same value to the same slot. When two finishes land in one slot at once, the one
written last stays, and that says nothing about either duration.

Version 1 entities are still read. Before this format each key held one ring, `Recent` ("<seconds>:<tag>,...",
oldest first, the last 64 finishes) with a `Count`, written read-then-replace with an ETag. Its entries are read as
older than any slot, in their order, and drop out of the sample as the slots fill. `Count` is kept as a lower
bound of the runs ever counted. The first slot written to such an entity sets `Version` 2. Code from before this
format reads a version 2 entity as empty, so it plans cold, which is always safe. Its replace would also drop
the slots. The history is only a hint.

Keys (Table Storage forbids `/ \\ # ?` and control characters in keys, and the workbook path is the
caller's): PartitionKey = hash of the owner, RowKey = action + "." + (hash of the workbook | "*"). The
specific key (owner + action + workbook) is the operation's own kind; the general one (owner + action) is the
pool of every workbook's runs. A finish writes a slot of both.

Entity size: at most 64 slot properties of "<seconds>:<8 hex>:<unix seconds>" (<= 30 characters each) plus a
version 1 ring (<= 1.2 K characters): far inside Table Storage's 255 properties and 64 KiB per string property
(learn.microsoft.com, "Understanding the Table service data model").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SAMPLE_SIZE = 64  # also the number of slots
DECIMALS = 1  # durations are kept to a tenth of a second
MAX_DURATION = 7 * 24 * 3600.0
LEGACY_VERSION = 1  # the ring written read-then-replace (Recent, Count)
FORMAT_VERSION = 2  # one property per slot, each written by an upsert (merge)
MAX_STRING_CHARS = 32 * 1024  # Table Storage: a string property holds at most 64 KiB (UTF-16)
TAG_CHARS = 8
SLOT_PREFIX = "S"
TRACKED_KIND = "tracked"  # the history kind of a tracked operation whose action is unknown


@dataclass(frozen=True)
class Entry:
    seconds: float
    tag: str  # TAG_CHARS hex of the operation id's hash: the same finish written twice is one entry
    at: int = 0  # when it finished, whole Unix seconds; 0: unknown (a version 1 entry)
    slot: int | None = None  # None: a version 1 entry (no slot)


def _order(entry: Entry) -> int:
    return entry.at


@dataclass(frozen=True)
class DurationHistory:
    entries: tuple[Entry, ...] = ()  # in the order they finished, oldest first, at most SAMPLE_SIZE
    count: int = 0  # runs counted (>= len(entries)); a lower bound once version 2 slots replace each other

    @property
    def size(self) -> int:
        return len(self.entries)

    def durations(self) -> list[float]:
        """The sample, oldest first."""
        return [e.seconds for e in self.entries]

    def add(self, seconds: float, operation_id: str, at: int = 0) -> DurationHistory:
        """The history after one more finish, as the store keeps it: the finish takes its slot (replacing
        what was there). Adding the same operation again changes nothing."""
        tag = operation_tag(operation_id)
        if any(e.tag == tag for e in self.entries):
            return self
        entry = Entry(_clean(seconds), tag, max(0, int(at)), slot_of(tag))
        kept = [e for e in self.entries if e.slot != entry.slot]
        entries = sorted([*kept, entry], key=_order)[-SAMPLE_SIZE:]  # stable: ties keep their order
        return DurationHistory(tuple(entries), self.count + 1)

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


def slot_of(tag: str) -> int:
    """The slot a finish goes into: from its operation's tag only (never from its duration)."""
    return int(tag, 16) % SAMPLE_SIZE


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


def history_keys(owner: str, action: str | None, workbook: str | None) -> list[tuple[str, str]]:
    """(PartitionKey, RowKey) to read, most specific first: owner + action + workbook (the operation's own kind),
    then owner + action (the pool). A tracked operation without an action is its own kind, `tracked`."""
    partition = owner_partition(owner)
    safe_action = "".join(c for c in (action or TRACKED_KIND) if c.isalnum())[:64] or "unknown"
    keys = [(partition, f"{safe_action}.*")]
    if workbook:
        keys.insert(0, (partition, f"{safe_action}.{_digest(workbook)}"))
    return keys


# --- entity encoding ---------------------------------------------------------------------------------


def slot_name(slot: int) -> str:
    return f"{SLOT_PREFIX}{slot:02d}"


def _slot_value(entry: Entry) -> str:
    return f"{entry.seconds:.1f}:{entry.tag}:{entry.at}"


def finish_properties(seconds: float, operation_id: str, at: float) -> dict[str, Any]:
    """What one finish upserts (merge) into each of its keys: the version and its slot, nothing else."""
    tag = operation_tag(operation_id)
    entry = Entry(_clean(seconds), tag, max(0, int(at)), slot_of(tag))
    return {"Version": FORMAT_VERSION, slot_name(slot_of(tag)): _slot_value(entry)}


def encode(history: DurationHistory) -> dict[str, Any]:
    """A whole entity's properties (without keys) holding this history: its slots, and its version 1 entries
    (if any) as the `Recent` ring. The store never writes a whole entity; tests and tools do."""
    legacy = [e for e in history.entries if e.slot is None]
    properties: dict[str, Any] = {"Version": FORMAT_VERSION, "Count": history.count}
    if legacy:
        properties["Recent"] = ",".join(f"{e.seconds:.1f}:{e.tag}" for e in legacy)
    for entry in history.entries:
        if entry.slot is not None:
            properties[slot_name(entry.slot)] = _slot_value(entry)
    return properties


def _legacy_entries(text: Any) -> list[Entry] | None:
    """A version 1 `Recent` ring; None: unreadable."""
    if text is None or text == "":
        return []
    if not isinstance(text, str) or len(text) > MAX_STRING_CHARS:
        return None
    entries = []
    for item in text.split(","):
        seconds, _, tag = item.partition(":")
        try:
            value = float(seconds)
        except ValueError:
            return None
        if not math.isfinite(value) or len(tag) != TAG_CHARS:
            return None
        entries.append(Entry(_clean(value), tag))
    return entries[-SAMPLE_SIZE:]


def _slot_entry(slot: int, text: Any) -> Entry | None:
    if not isinstance(text, str) or len(text) > 64:
        return None
    parts = text.split(":")
    if len(parts) != 3 or len(parts[1]) != TAG_CHARS:
        return None
    try:
        value, at = float(parts[0]), int(parts[2])
    except ValueError:
        return None
    if not math.isfinite(value) or at < 0:
        return None
    return Entry(_clean(value), parts[1], at, slot)


def decode(properties: Mapping[str, Any] | None) -> DurationHistory:
    """The sample an entity holds (either version). An entity this code cannot read (a newer version, damage)
    counts as empty: the schedule then falls back to the cold one, which is always safe."""
    if not properties or properties.get("Version") not in (LEGACY_VERSION, FORMAT_VERSION):
        return DurationHistory()
    legacy = _legacy_entries(properties.get("Recent"))
    if legacy is None:
        return DurationHistory()
    slots = [
        entry
        for slot in range(SAMPLE_SIZE)
        if (text := properties.get(slot_name(slot))) is not None
        if (entry := _slot_entry(slot, text)) is not None
    ]
    entries = sorted([*legacy, *slots], key=_order)[-SAMPLE_SIZE:]  # version 1 entries (at 0) first
    count = properties.get("Count")
    count = count if isinstance(count, int) and count >= len(entries) else len(entries)
    return DurationHistory(tuple(entries), count)
