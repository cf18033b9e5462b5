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
    result JSON (or None); it runs once, when the operation first reaches its terminal poll, or, for an
    operation with a drawn ``duration``, at ``created + duration`` (``settle``), polled or not: Excel
    does the work whether anyone asks. ``fail_with``: the operation fails with this error instead
    (a write that lost a merge conflict with another one on the workbook).
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
    duration: float | None = None
    created_wall: float = field(default_factory=time.time)
    fail_with: dict[str, Any] | None = None
    completed_wall: float | None = None
    first_terminal_poll_wall: float | None = None
    completed_monotonic: float | None = None
    on_finish: Callable[[Operation], None] | None = None
    """Runs once the operation reached its outcome (the workbook renews the session the write ran in)."""

    @property
    def completes_wall(self) -> float | None:
        """When a drawn-duration operation finishes (wall clock), None for poll-count ones."""
        return self.created_wall + self.duration if self.duration is not None else None

    def busy(self, now: float | None = None) -> bool:
        """Still occupying the workbook: not terminal (and for a drawn duration, not yet due)."""
        if self.terminal or self.expired(now):
            return False
        if self.duration is not None:
            return (now if now is not None else time.monotonic()) - self.created_monotonic < self.duration
        return True

    def settle(self, now: float | None = None) -> None:
        """Finish a drawn-duration operation whose time has come (idempotent)."""
        if self.duration is None or self.terminal:
            return
        if (now if now is not None else time.monotonic()) - self.created_monotonic >= self.duration:
            self._finish()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item": self.item_id,
            "action": self.action,
            "phase": self.phase,
            "polls": self.polls,
            "createdAt": self.created_wall,
            "durationSeconds": self.duration,
            "completesAt": self.completes_wall,
            "completedAt": self.completed_wall,
            "firstTerminalPollAt": self.first_terminal_poll_wall,
            "error": copy.deepcopy(self.error),
        }

    def expired(self, now: float | None = None) -> bool:
        """The operation URL stopped answering: ``operationTtlSeconds`` after it was created, or
        ``operationTtlAfterEndSeconds`` after it reached its outcome (the write stays applied). How long an
        operation id stays valid is undocumented (graph-get-workbookoperation.md says nothing of it)."""
        at = now if now is not None else time.monotonic()
        ttl = self.scenario.operation_ttl_seconds
        if ttl is not None and at - self.created_monotonic >= ttl:
            return True
        after_end = self.scenario.operation_ttl_after_end_seconds
        return (
            after_end is not None
            and self.completed_monotonic is not None
            and at - self.completed_monotonic >= after_end
        )

    @property
    def terminal(self) -> bool:
        return self.phase in ("succeeded", "failed")

    def poll(self) -> Phase:
        """Advance the state machine by one poll and return the phase to report."""
        phase = self._advance()
        if phase in ("succeeded", "failed") and self.first_terminal_poll_wall is None:
            self.first_terminal_poll_wall = time.time()
        return phase

    def _advance(self) -> Phase:
        if self.terminal:
            self.polls += 1
            return self.phase
        n = self.polls
        self.polls += 1
        sc = self.scenario
        if self.duration is not None:
            self.settle()
            if self.terminal:
                return self.phase
            self.phase = "notStarted" if n < sc.not_started_polls else "running"
            return self.phase
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
        self.completed_wall = self.completes_wall if self.completes_wall is not None else time.time()
        self.completed_monotonic = (
            self.created_monotonic + self.duration if self.duration is not None else time.monotonic()
        )
        self._outcome()
        if self.on_finish is not None:
            self.on_finish(self)

    def _outcome(self) -> None:
        if self.fail_with is not None:
            self.phase = "failed"
            self.error = copy.deepcopy(self.fail_with)
            return
        if self.scenario.outcome == "failed":
            self.phase = "failed"
            self.error = copy.deepcopy(self.scenario.error)
            return
        try:
            self.result = self.apply()
        except WorkbookError as exc:
            self.phase = "failed"
            self.error = exc.to_error()
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
        duration: float | None = None,
        fail_with: dict[str, Any] | None = None,
        on_finish: Callable[[Operation], None] | None = None,
    ) -> Operation:
        op = Operation(
            id=str(uuid.uuid4()),
            item_id=item_id,
            item_path=item_path,
            action=action,
            scenario=scenario,
            apply=apply,
            duration=duration,
            fail_with=fail_with,
            on_finish=on_finish,
        )
        self._ops[op.id] = op
        return op

    def get(self, op_id: str) -> Operation | None:
        return self._ops.get(op_id)

    def settle(self, now: float | None = None) -> None:
        """Apply every drawn-duration operation that is due, in completion order (rows land in that order)."""
        at = now if now is not None else time.monotonic()
        due = [
            op
            for op in self._ops.values()
            if op.duration is not None and not op.terminal and at - op.created_monotonic >= op.duration
        ]
        for op in sorted(due, key=lambda o: o.created_monotonic + (o.duration or 0.0)):
            op.settle(at)

    def busy_on(self, item_id: str, now: float | None = None) -> Operation | None:
        """An operation still running on the item (the workbook is busy), if any."""
        at = now if now is not None else time.monotonic()
        return next((op for op in self._ops.values() if op.item_id == item_id and op.busy(at)), None)

    def all(self, item: str | None = None) -> list[Operation]:
        return sorted(
            (op for op in self._ops.values() if item is None or op.item_id == item), key=lambda o: o.created_monotonic
        )

    def reset(self) -> None:
        self._ops.clear()
