"""The scenario parts that make the emulator behave like real Graph when it misbehaves (issue 19), with strict
parsing (camelCase JSON; ScenarioError names the bad field): write faults (apply-then-fail and the documented
InsertDeleteConflict), their seeded rate, the latency model and session expiry. Each part is off unless given."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

from .graph_errors import SESSION_ERROR_CODES
from .scenario_parts import ACTIONS, ScenarioError

WriteFaultKind = Literal["applyThen504", "applyThen500", "applyThenDrop", "insertDeleteConflict"]
APPLY_THEN_FAIL: tuple[WriteFaultKind, ...] = ("applyThen504", "applyThen500", "applyThenDrop")
WRITE_FAULTS: tuple[WriteFaultKind, ...] = (*APPLY_THEN_FAIL, "insertDeleteConflict")
ROW_ACTIONS = ("createTableRow", "deleteTableRow")
ROW_ADDRESSING = ("lenient", "graph")

# resources/excel.md ("Usage") and microsoft-graph-docs PR #5575: "Typically the persistent session expires after
# about 5 minutes of inactivity. Non persistent session expires after about 7 minutes of inactivity."
PERSISTENT_IDLE_SECONDS = 300.0
NON_PERSISTENT_IDLE_SECONDS = 420.0


def _number(
    obj: dict[str, Any], name: str, where: str, *, positive: bool = False, default: float | None = None
) -> float:
    value = obj.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        raise ScenarioError(f"{where}.{name}: must be a {'positive' if positive else 'non-negative'} number")
    return float(value)


def _object(obj: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ScenarioError(f"{where}: must be a JSON object")
    unknown = set(obj) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s): {', '.join(sorted(unknown))}")
    return obj


@dataclass(frozen=True)
class WriteFault:
    """``count`` consecutive matching writes get ``fault``: ``applyThen504`` / ``applyThen500`` /
    ``applyThenDrop`` apply the write and then answer 504, 500 or close the connection with no answer;
    ``insertDeleteConflict`` answers 409 InsertDeleteConflict and applies nothing. ``action`` limits it to one
    write action (None: any; insertDeleteConflict only ever matches row writes). ``error`` replaces the answer's
    default chain."""

    fault: WriteFaultKind
    action: str | None = None
    count: int = 1
    error: dict[str, Any] | None = None

    def matches(self, action: str) -> bool:
        if self.fault == "insertDeleteConflict" and action not in ROW_ACTIONS:
            return False
        return self.action is None or self.action == action

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fault": self.fault, "action": self.action, "count": self.count}
        if self.error is not None:
            out["error"] = copy.deepcopy(self.error)
        return out


def parse_write_fault(obj: Any, where: str) -> WriteFault:
    body = _object(obj, where, {"fault", "action", "count", "error"})
    fault = body.get("fault")
    if fault not in WRITE_FAULTS:
        raise ScenarioError(f"{where}.fault: must be one of {', '.join(WRITE_FAULTS)}")
    action = body.get("action")
    if action is not None and action not in ACTIONS:
        raise ScenarioError(f"{where}.action: must be one of {', '.join(ACTIONS)} (or null for any write)")
    if fault == "insertDeleteConflict" and action == "createSession":
        raise ScenarioError(f"{where}.action: insertDeleteConflict is an error of row writes")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ScenarioError(f"{where}.count: must be a positive integer")
    error = body.get("error")
    if error is not None and (not isinstance(error, dict) or not isinstance(error.get("code"), str)):
        raise ScenarioError(f"{where}.error: must be an error object with a string 'code'")
    return WriteFault(fault, action, count, copy.deepcopy(error))


def parse_write_faults(obj: Any, where: str = "writeFaults") -> tuple[WriteFault, ...]:
    if not isinstance(obj, list):
        raise ScenarioError(f"'{where}' must be a list of write faults")
    return tuple(parse_write_fault(item, f"{where}[{n}]") for n, item in enumerate(obj))


@dataclass(frozen=True)
class WriteFaultRate:
    """Each matching write draws one fault with ``probability`` (from one ``random.Random(seed)`` per scenario, in
    write order), picking uniformly among ``faults``; for benches ("3 % of writes")."""

    probability: float
    faults: tuple[WriteFaultKind, ...] = APPLY_THEN_FAIL
    actions: tuple[str, ...] = ("createTableRow", "createSession")
    seed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "probability": self.probability,
            "faults": list(self.faults),
            "actions": list(self.actions),
            "seed": self.seed,
        }


def parse_write_fault_rate(obj: Any, where: str = "writeFaultRate") -> WriteFaultRate:
    body = _object(obj, where, {"probability", "faults", "actions", "seed"})
    probability = _number(body, "probability", where)
    if probability > 1:
        raise ScenarioError(f"{where}.probability: must be between 0 and 1")
    faults = body.get("faults", list(APPLY_THEN_FAIL))
    if not isinstance(faults, list) or not faults or any(f not in WRITE_FAULTS for f in faults):
        raise ScenarioError(f"{where}.faults: must be a non-empty list of {', '.join(WRITE_FAULTS)}")
    actions = body.get("actions", ["createTableRow", "createSession"])
    if not isinstance(actions, list) or not actions or any(a not in ACTIONS for a in actions):
        raise ScenarioError(f"{where}.actions: must be a non-empty list of {', '.join(ACTIONS)}")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ScenarioError(f"{where}.seed: must be an integer")
    return WriteFaultRate(probability, tuple(faults), tuple(actions), seed)


@dataclass(frozen=True)
class Latency:
    """How long Excel takes: ``perRequestSeconds`` + ``perCellSeconds`` x cells. A synchronous answer (writes,
    reads, refresh/close session) is held that long (an asyncio sleep), and an asynchronous operation without a
    drawn duration runs that long."""

    per_request: float = 0.0
    per_cell: float = 0.0

    def seconds(self, cells: int) -> float:
        return self.per_request + self.per_cell * cells

    def to_json(self) -> dict[str, Any]:
        return {"perRequestSeconds": self.per_request, "perCellSeconds": self.per_cell}


def parse_latency(obj: Any, where: str = "latency") -> Latency:
    body = _object(obj, where, {"perRequestSeconds", "perCellSeconds"})
    return Latency(
        _number(body, "perRequestSeconds", where, default=0), _number(body, "perCellSeconds", where, default=0)
    )


@dataclass(frozen=True)
class SessionExpiry:
    """Sessions die after this long idle (persistent and non-persistent sessions apart); a request carrying an id
    renews it; a dead, closed or unknown id is refused with ``errorCode``."""

    persistent_idle: float = PERSISTENT_IDLE_SECONDS
    non_persistent_idle: float = NON_PERSISTENT_IDLE_SECONDS
    error_code: str = "invalidSessionReCreatable"

    def idle(self, persist_changes: bool) -> float:
        return self.persistent_idle if persist_changes else self.non_persistent_idle

    def to_json(self) -> dict[str, Any]:
        return {
            "persistentIdleSeconds": self.persistent_idle,
            "nonPersistentIdleSeconds": self.non_persistent_idle,
            "errorCode": self.error_code,
        }


def parse_session_expiry(obj: Any, where: str = "sessionExpiry") -> SessionExpiry:
    body = _object(obj, where, {"persistentIdleSeconds", "nonPersistentIdleSeconds", "errorCode"})
    code = body.get("errorCode", "invalidSessionReCreatable")
    if code not in SESSION_ERROR_CODES:
        raise ScenarioError(f"{where}.errorCode: must be one of {', '.join(SESSION_ERROR_CODES)}")
    return SessionExpiry(
        _number(body, "persistentIdleSeconds", where, positive=True, default=PERSISTENT_IDLE_SECONDS),
        _number(body, "nonPersistentIdleSeconds", where, positive=True, default=NON_PERSISTENT_IDLE_SECONDS),
        code,
    )


def parse_limit(obj: dict[str, Any], name: str) -> int | None:
    """An optional positive integer limit (bytes, cells, sessions)."""
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ScenarioError(f"'{name}' must be a positive integer")
    return value
