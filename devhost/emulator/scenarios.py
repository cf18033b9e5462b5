"""A workbook's scenario (how the emulator answers for it) and its run state, and the emulator's config, with
strict parsing (camelCase JSON). Its faults and durations are in scenario_parts."""

from __future__ import annotations

import copy
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from .scenario_parts import (
    Duration,
    Fault,
    ScenarioError,
    default_failure_error,
    parse_action_durations,
    parse_duration,
    parse_fault,
    parse_faults,
)
from .scenario_realism import (
    ROW_ADDRESSING,
    Latency,
    SessionExpiry,
    WriteFault,
    WriteFaultRate,
    parse_latency,
    parse_limit,
    parse_session_expiry,
    parse_write_fault_rate,
    parse_write_faults,
)

__all__ = ["Fault", "Scenario", "ScenarioError", "ScenarioState", "parse_config", "parse_scenario"]

Mode = Literal["async", "sync"]
Outcome = Literal["succeeded", "failed"]
StatusCase = Literal["camel", "pascal"]
Contention = Literal["off", "throttle", "conflict", "merge"]
CONTENTION_MODES = ("off", "throttle", "conflict", "merge")
RowAddressing = Literal["lenient", "graph"]


@dataclass(frozen=True)
class Scenario:
    """Behaviour of one workbook (keyed by drive item id). Immutable; queues live in ScenarioState."""

    mode: Mode = "async"
    start_faults: tuple[Fault, ...] = ()
    start_error: Fault | None = None
    not_started_polls: int = 0
    running_polls: int = 2
    running_seconds: float | None = None
    outcome: Outcome = "succeeded"
    error: dict[str, Any] = field(default_factory=default_failure_error)
    status_case: StatusCase = "camel"
    location_origin: str | None = None
    location_version: str | None = None
    location_query: str | None = None
    resource_location_origin: str | None = None
    resource_location_version: str | None = None
    resource_location_query: str | None = None
    operation_faults: tuple[Fault, ...] = ()
    result_faults: tuple[Fault, ...] = ()
    operation_ttl_seconds: float | None = None
    operation_latency_seconds: float | None = None
    duration: Duration | None = None
    action_durations: tuple[tuple[str, Duration], ...] = ()
    contention: Contention = "off"
    contention_retry_after_seconds: float = 1.0
    # Issue 19, Graph as it misbehaves: every one off by default (scenario_realism, graph_errors).
    strict_tables: bool = False
    row_addressing: RowAddressing = "lenient"
    write_faults: tuple[WriteFault, ...] = ()
    write_fault_rate: WriteFaultRate | None = None
    request_payload_limit_bytes: int | None = None
    response_payload_limit_bytes: int | None = None
    max_request_cells: int | None = None
    latency: Latency | None = None
    session_expiry: SessionExpiry | None = None
    session_limit: int | None = None
    operation_ttl_after_end_seconds: float | None = None

    def duration_for(self, action: str) -> Duration | None:
        """The action's own distribution, else the item's, else None (the poll-count state machine)."""
        return dict(self.action_durations).get(action, self.duration)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "startFaults": [f.to_json() for f in self.start_faults],
            "startError": self.start_error.to_json() if self.start_error else None,
            "notStartedPolls": self.not_started_polls,
            "runningPolls": self.running_polls,
            "runningSeconds": self.running_seconds,
            "outcome": self.outcome,
            "error": copy.deepcopy(self.error),
            "statusCase": self.status_case,
            "locationOrigin": self.location_origin,
            "locationVersion": self.location_version,
            "locationQuery": self.location_query,
            "resourceLocationOrigin": self.resource_location_origin,
            "resourceLocationVersion": self.resource_location_version,
            "resourceLocationQuery": self.resource_location_query,
            "operationFaults": [f.to_json() for f in self.operation_faults],
            "resultFaults": [f.to_json() for f in self.result_faults],
            "operationTtlSeconds": self.operation_ttl_seconds,
            "operationLatencySeconds": self.operation_latency_seconds,
            "duration": self.duration.to_json() if self.duration else None,
            "actionDurations": {action: d.to_json() for action, d in self.action_durations},
            "contention": self.contention,
            "contentionRetryAfterSeconds": self.contention_retry_after_seconds,
            "strictTables": self.strict_tables,
            "rowAddressing": self.row_addressing,
            "writeFaults": [f.to_json() for f in self.write_faults],
            "writeFaultRate": self.write_fault_rate.to_json() if self.write_fault_rate else None,
            "requestPayloadLimitBytes": self.request_payload_limit_bytes,
            "responsePayloadLimitBytes": self.response_payload_limit_bytes,
            "maxRequestCells": self.max_request_cells,
            "latency": self.latency.to_json() if self.latency else None,
            "sessionExpiry": self.session_expiry.to_json() if self.session_expiry else None,
            "sessionLimit": self.session_limit,
            "operationTtlAfterEndSeconds": self.operation_ttl_after_end_seconds,
        }
        return out


_SCENARIO_FIELDS = {
    "mode",
    "startFaults",
    "startError",
    "notStartedPolls",
    "runningPolls",
    "runningSeconds",
    "outcome",
    "error",
    "statusCase",
    "locationOrigin",
    "locationVersion",
    "locationQuery",
    "resourceLocationOrigin",
    "resourceLocationVersion",
    "resourceLocationQuery",
    "operationFaults",
    "resultFaults",
    "operationTtlSeconds",
    "operationLatencySeconds",
    "duration",
    "actionDurations",
    "contention",
    "contentionRetryAfterSeconds",
    "strictTables",
    "rowAddressing",
    "writeFaults",
    "writeFaultRate",
    "requestPayloadLimitBytes",
    "responsePayloadLimitBytes",
    "maxRequestCells",
    "latency",
    "sessionExpiry",
    "sessionLimit",
    "operationTtlAfterEndSeconds",
}


def _count(obj: dict[str, Any], name: str, default: int) -> int:
    value = obj.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ScenarioError(f"'{name}' must be a non-negative integer")
    return value


def _seconds(obj: dict[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ScenarioError(f"'{name}' must be a non-negative number")
    return float(value)


def _opt_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ScenarioError(f"'{name}' must be a string")
    return value


def _origin(obj: dict[str, Any], name: str) -> str | None:
    value = _opt_str(obj, name)
    return value.rstrip("/") if value is not None else None


def _version(obj: dict[str, Any], name: str) -> str | None:
    value = _opt_str(obj, name)
    return value.strip("/") if value is not None else None


def _query(obj: dict[str, Any], name: str) -> str | None:
    value = _opt_str(obj, name)
    return value.lstrip("?") if value is not None else None


def parse_scenario(obj: Any) -> Scenario:
    if not isinstance(obj, dict):
        raise ScenarioError("a scenario must be a JSON object")
    unknown = set(obj) - _SCENARIO_FIELDS
    if unknown:
        raise ScenarioError(f"unknown scenario field(s): {', '.join(sorted(unknown))}")
    mode = obj.get("mode", "async")
    if mode not in ("async", "sync"):
        raise ScenarioError("'mode' must be 'async' or 'sync'")
    outcome = obj.get("outcome", "succeeded")
    if outcome not in ("succeeded", "failed"):
        raise ScenarioError("'outcome' must be 'succeeded' or 'failed'")
    status_case = obj.get("statusCase", "camel")
    if status_case not in ("camel", "pascal"):
        raise ScenarioError("'statusCase' must be 'camel' or 'pascal'")
    error = obj.get("error")
    if error is None:
        error = default_failure_error()
    elif not isinstance(error, dict):
        raise ScenarioError("'error' must be an object")
    start_error_obj = obj.get("startError")
    duration = parse_duration(obj["duration"], "duration") if obj.get("duration") is not None else None
    action_durations = parse_action_durations(obj.get("actionDurations"))
    if obj.get("runningSeconds") is not None and (duration is not None or action_durations):
        raise ScenarioError("runningSeconds: give either runningSeconds or duration/actionDurations, not both")
    contention = obj.get("contention", "off")
    if contention not in CONTENTION_MODES:
        raise ScenarioError(f"'contention' must be one of {', '.join(CONTENTION_MODES)}")
    retry_after = obj.get("contentionRetryAfterSeconds", 1.0)
    if (
        isinstance(retry_after, bool)
        or not isinstance(retry_after, int | float)
        or not (math.isfinite(retry_after) and retry_after >= 0)
    ):
        raise ScenarioError("'contentionRetryAfterSeconds' must be a non-negative number")
    strict_tables = obj.get("strictTables", False)
    if not isinstance(strict_tables, bool):
        raise ScenarioError("'strictTables' must be a boolean")
    row_addressing = obj.get("rowAddressing", "lenient")
    if row_addressing not in ROW_ADDRESSING:
        raise ScenarioError(f"'rowAddressing' must be one of {', '.join(ROW_ADDRESSING)}")
    rate = obj.get("writeFaultRate")
    latency = obj.get("latency")
    expiry = obj.get("sessionExpiry")
    return Scenario(
        mode=mode,
        start_faults=tuple(parse_faults(obj.get("startFaults", []), "startFaults")),
        start_error=(parse_fault(start_error_obj, "startError") if start_error_obj is not None else None),
        not_started_polls=_count(obj, "notStartedPolls", 0),
        running_polls=_count(obj, "runningPolls", 2),
        running_seconds=_seconds(obj, "runningSeconds"),
        outcome=outcome,
        error=copy.deepcopy(error),
        status_case=status_case,
        location_origin=_origin(obj, "locationOrigin"),
        location_version=_version(obj, "locationVersion"),
        location_query=_query(obj, "locationQuery"),
        resource_location_origin=_origin(obj, "resourceLocationOrigin"),
        resource_location_version=_version(obj, "resourceLocationVersion"),
        resource_location_query=_query(obj, "resourceLocationQuery"),
        operation_faults=tuple(parse_faults(obj.get("operationFaults", []), "operationFaults")),
        result_faults=tuple(parse_faults(obj.get("resultFaults", []), "resultFaults")),
        operation_ttl_seconds=_seconds(obj, "operationTtlSeconds"),
        operation_latency_seconds=_seconds(obj, "operationLatencySeconds"),
        duration=duration,
        action_durations=action_durations,
        contention=contention,
        contention_retry_after_seconds=float(retry_after),
        strict_tables=strict_tables,
        row_addressing=row_addressing,
        write_faults=parse_write_faults(obj.get("writeFaults", [])),
        write_fault_rate=parse_write_fault_rate(rate) if rate is not None else None,
        request_payload_limit_bytes=parse_limit(obj, "requestPayloadLimitBytes"),
        response_payload_limit_bytes=parse_limit(obj, "responsePayloadLimitBytes"),
        max_request_cells=parse_limit(obj, "maxRequestCells"),
        latency=parse_latency(latency) if latency is not None else None,
        session_expiry=parse_session_expiry(expiry) if expiry is not None else None,
        session_limit=parse_limit(obj, "sessionLimit"),
        operation_ttl_after_end_seconds=_seconds(obj, "operationTtlAfterEndSeconds"),
    )


@dataclass
class ScenarioState:
    """A scenario plus its consumable fault queues (shared by all requests on the item)."""

    scenario: Scenario
    start_faults: deque[Fault] = field(default_factory=deque)
    operation_faults: deque[Fault] = field(default_factory=deque)
    result_faults: deque[Fault] = field(default_factory=deque)
    rngs: dict[str, random.Random] = field(default_factory=dict)
    write_faults: list[list[Any]] = field(default_factory=list)
    """[WriteFault, writes it still fires for], in order (the scenario's, then any injected through the admin API)."""
    fault_rng: random.Random | None = None

    @classmethod
    def create(cls, scenario: Scenario) -> ScenarioState:
        rate = scenario.write_fault_rate
        return cls(
            scenario=scenario,
            start_faults=deque(scenario.start_faults),
            operation_faults=deque(scenario.operation_faults),
            result_faults=deque(scenario.result_faults),
            write_faults=[[f, f.count] for f in scenario.write_faults],
            fault_rng=random.Random(rate.seed) if rate is not None else None,  # nosec B311: a test double's draws
        )

    def add_write_faults(self, faults: tuple[WriteFault, ...]) -> None:
        self.write_faults.extend([f, f.count] for f in faults)

    def next_write_fault(self, action: str) -> WriteFault | None:
        """The fault the next `action` write gets: the first queued one that matches (consumed), else a draw of
        the scenario's rate, else None."""
        for entry in self.write_faults:
            fault: WriteFault = entry[0]
            if entry[1] > 0 and fault.matches(action):
                entry[1] -= 1
                if entry[1] == 0:
                    self.write_faults.remove(entry)
                return fault
        rate = self.scenario.write_fault_rate
        if rate is None or self.fault_rng is None or action not in rate.actions:
            return None
        if self.fault_rng.random() >= rate.probability:
            return None
        kind = rate.faults[self.fault_rng.randrange(len(rate.faults))]
        candidate = WriteFault(kind, action)
        return candidate if candidate.matches(action) else None

    def draw_duration(self, action: str) -> float | None:
        """Draw the running time of a new operation of `action` (None: no distribution configured). Each
        distribution (the item's, each action's) has its own generator, seeded when it gives a seed."""
        dist = self.scenario.duration_for(action)
        if dist is None:
            return None
        key = action if action in dict(self.scenario.action_durations) else ""
        rng = self.rngs.get(key)
        if rng is None:
            rng = self.rngs[key] = random.Random(dist.seed)  # nosec B311: a test double's durations
        return dist.draw(rng)

    def to_json(self) -> dict[str, Any]:
        out = self.scenario.to_json()
        out["remaining"] = {
            "startFaults": len(self.start_faults),
            "operationFaults": len(self.operation_faults),
            "resultFaults": len(self.result_faults),
            "writeFaults": [{**entry[0].to_json(), "count": entry[1]} for entry in self.write_faults],
        }
        return out


@dataclass(frozen=True)
class ConfigUpdate:
    """``PUT /_emulator/config``: fields left out (None) stay unchanged."""

    token_lifetime: float | None = None
    strict_delegated: bool | None = None


def parse_config(obj: Any) -> ConfigUpdate:
    """Parse ``PUT /_emulator/config`` (``tokenLifetimeSeconds``, ``strictDelegated``)."""
    if not isinstance(obj, dict):
        raise ScenarioError("config must be a JSON object")
    unknown = set(obj) - {"tokenLifetimeSeconds", "strictDelegated"}
    if unknown:
        raise ScenarioError(f"unknown config field(s): {', '.join(sorted(unknown))}")
    value = obj.get("tokenLifetimeSeconds")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
        raise ScenarioError("'tokenLifetimeSeconds' must be a non-negative number")
    strict = obj.get("strictDelegated")
    if strict is not None and not isinstance(strict, bool):
        raise ScenarioError("'strictDelegated' must be a boolean")
    return ConfigUpdate(float(value) if value is not None else None, strict)
