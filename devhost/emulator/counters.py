"""Counters for benches and tests: per workbook item, the Graph requests, bytes in and out, cells and rows written
and read, and every fault the emulator fired (with a log of them, in order)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ItemCounters:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: int = 0
    rows_written: int = 0
    cells_written: int = 0
    rows_read: int = 0
    cells_read: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def add(self, other: ItemCounters) -> None:
        self.requests += other.requests
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.dropped += other.dropped
        self.rows_written += other.rows_written
        self.cells_written += other.cells_written
        self.rows_read += other.rows_read
        self.cells_read += other.cells_read
        for name, n in other.faults.items():
            self.faults[name] = self.faults.get(name, 0) + n

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
            "dropped": self.dropped,
            "rowsWritten": self.rows_written,
            "cellsWritten": self.cells_written,
            "rowsRead": self.rows_read,
            "cellsRead": self.cells_read,
            "faults": dict(sorted(self.faults.items())),
        }


@dataclass
class FaultEvent:
    seq: int | None
    time: float
    item: str
    action: str | None
    fault: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "item": self.item, "action": self.action, "fault": self.fault}


class Counters:
    def __init__(self) -> None:
        self._items: dict[str, ItemCounters] = {}
        self._faults: list[FaultEvent] = []

    def item(self, item_id: str) -> ItemCounters:
        found = self._items.get(item_id)
        if found is None:
            found = self._items[item_id] = ItemCounters()
        return found

    def fault(self, item_id: str, name: str, action: str | None, seq: int | None) -> None:
        """Count a fault that fired (``applyThen504``, ``requestPayloadTooLarge``, ``invalidSession``, …)."""
        counters = self.item(item_id)
        counters.faults[name] = counters.faults.get(name, 0) + 1
        self._faults.append(FaultEvent(seq, time.time(), item_id, action, name))

    def to_json(self, item_id: str | None = None) -> dict[str, Any]:
        """``{"total": {...}, "items": {item: {...}}}``, or one item's figures."""
        if item_id is not None:
            return self._items.get(item_id, ItemCounters()).to_json()
        total = ItemCounters()
        for counters in self._items.values():
            total.add(counters)
        return {"total": total.to_json(), "items": {k: v.to_json() for k, v in sorted(self._items.items())}}

    def fault_log(self, item_id: str | None = None) -> list[dict[str, Any]]:
        return [event.to_json() for event in self._faults if item_id is None or event.item == item_id]

    def reset(self) -> None:
        self._items.clear()
        self._faults.clear()
