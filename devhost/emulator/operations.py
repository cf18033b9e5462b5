"""Workbook operation state machine (notStarted -> running -> succeeded | failed)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .scenarios import Scenario
from .workbook import WorkbookError

Action = Literal["createSession", "createTableRow", "deleteTableRow"]
Phase = Literal["notStarted", "running", "succeeded", "failed"]

_PASCAL: dict[Phase, str] = {
    "notStarted": "NotStarted",
    "running": "Running",
    "succeeded": "Completed",
    "failed": "Failed",
}


def spell_status(phase: Phase, case: str) -> str:
    return _PASCAL[phase] if case == "pascal" else phase


@dataclass
class Operation:
    """One asynchronous workbook operation.

    ``apply`` performs the state change (create session / insert row / delete row) and returns the
    result JSON (or None); it runs once, when the operation first reaches its terminal poll.
    """

    id: str
    item_id: str
    item_path: str
    action: Action
    scenario: Scenario
    apply: Callable[[], dict[str, Any] | None]
    created_monotonic: float = field(default_factory=time.monotonic)
    polls: int = 0
    phase: Phase = "notStarted"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def expired(self, now: float | None = None) -> bool:
        ttl = self.scenario.operation_ttl_seconds
        if ttl is None:
            return False
        return ((now if now is not None else time.monotonic()) - self.created_monotonic) >= ttl

    @property
    def terminal(self) -> bool:
        return self.phase in ("succeeded", "failed")

    def poll(self) -> Phase:
        """Advance the state machine by one poll and return the phase to report."""
        if self.terminal:
            self.polls += 1
            return self.phase
        n = self.polls
        self.polls += 1
        sc = self.scenario
        if n < sc.not_started_polls:
            self.phase = "notStarted"
            return self.phase
        if sc.running_seconds is not None:
            if time.monotonic() - self.created_monotonic < sc.running_seconds:
                self.phase = "running"
                return self.phase
        elif n < sc.not_started_polls + sc.running_polls:
            self.phase = "running"
            return self.phase
        self._finish()
        return self.phase

    def _finish(self) -> None:
        if self.scenario.outcome == "failed":
            self.phase = "failed"
            self.error = copy.deepcopy(self.scenario.error)
            return
        try:
            self.result = self.apply()
        except WorkbookError as exc:
            self.phase = "failed"
            self.error = {"code": exc.code, "message": exc.message}
            return
        self.phase = "succeeded"


class OperationStore:
    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}

    def create(
        self,
        item_id: str,
        item_path: str,
        action: Action,
        scenario: Scenario,
        apply: Callable[[], dict[str, Any] | None],
    ) -> Operation:
        op = Operation(
            id=str(uuid.uuid4()),
            item_id=item_id,
            item_path=item_path,
            action=action,
            scenario=scenario,
            apply=apply,
        )
        self._ops[op.id] = op
        return op

    def get(self, op_id: str) -> Operation | None:
        return self._ops.get(op_id)

    def reset(self) -> None:
        self._ops.clear()
