"""Scenario and fault configuration (camelCase JSON) for the emulator, with strict parsing."""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["async", "sync"]
Outcome = Literal["succeeded", "failed"]
StatusCase = Literal["camel", "pascal"]


class ScenarioError(ValueError):
    """Raised when a scenario/fault/config document is invalid."""


def default_failure_error() -> dict[str, Any]:
    """The seed page's three-level error chain (nesting key ``innerError``)."""
    return {
        "code": "internalServerError",
        "message": "An internal server error occurred while processing the request.",
        "innerError": {
            "code": "internalServerErrorUncategorized",
            "message": "An unspecified error has occurred.",
            "innerError": {
                "code": "GenericFileOpenError",
                "message": "The workbook cannot be opened.",
            },
        },
    }


@dataclass(frozen=True)
class Fault:
    """One canned HTTP response.

    Exactly one of ``body`` (JSON value, ``has_body``), ``raw_body`` (text served verbatim) or
    ``error`` (served as ``{"error": error}``) may be given; with none of them a status >= 400 gets
    a default Graph error envelope and any other status an empty body.
    """

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    has_body: bool = False
    raw_body: str | None = None
    error: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.headers:
            out["headers"] = dict(self.headers)
        if self.has_body:
            out["body"] = copy.deepcopy(self.body)
        if self.raw_body is not None:
            out["rawBody"] = self.raw_body
        if self.error is not None:
            out["error"] = copy.deepcopy(self.error)
        return out


_FAULT_FIELDS = {"status", "headers", "body", "rawBody", "error"}


def parse_fault(obj: Any, where: str) -> Fault:
    if not isinstance(obj, dict):
        raise ScenarioError(f"{where}: a fault must be a JSON object")
    unknown = set(obj) - _FAULT_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown fault field(s): {', '.join(sorted(unknown))}")
    status = obj.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ScenarioError(f"{where}: 'status' must be an integer HTTP status (100-599)")
    headers_obj = obj.get("headers", {})
    if not isinstance(headers_obj, dict):
        raise ScenarioError(f"{where}: 'headers' must be an object of strings")
    headers: dict[str, str] = {}
    for key, value in headers_obj.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ScenarioError(f"{where}: header {key!r} must be a string")
        headers[str(key)] = str(value)
    given = [name for name in ("body", "rawBody", "error") if name in obj]
    if len(given) > 1:
        raise ScenarioError(f"{where}: give at most one of body, rawBody, error")
    raw_body = obj.get("rawBody")
    if raw_body is not None and not isinstance(raw_body, str):
        raise ScenarioError(f"{where}: 'rawBody' must be a string")
    error = obj.get("error")
    if "error" in obj and not isinstance(error, dict):
        raise ScenarioError(f"{where}: 'error' must be an object")
    return Fault(
        status=status,
        headers=headers,
        body=copy.deepcopy(obj.get("body")),
        has_body="body" in obj,
        raw_body=raw_body,
        error=copy.deepcopy(error) if isinstance(error, dict) else None,
    )


def _parse_faults(obj: Any, where: str) -> list[Fault]:
    if not isinstance(obj, list):
        raise ScenarioError(f"'{where}' must be a list of faults")
    return [parse_fault(item, f"{where}[{n}]") for n, item in enumerate(obj)]


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
    return Scenario(
        mode=mode,
        start_faults=tuple(_parse_faults(obj.get("startFaults", []), "startFaults")),
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
        operation_faults=tuple(_parse_faults(obj.get("operationFaults", []), "operationFaults")),
        result_faults=tuple(_parse_faults(obj.get("resultFaults", []), "resultFaults")),
        operation_ttl_seconds=_seconds(obj, "operationTtlSeconds"),
        operation_latency_seconds=_seconds(obj, "operationLatencySeconds"),
    )


@dataclass
class ScenarioState:
    """A scenario plus its consumable fault queues (shared by all requests on the item)."""

    scenario: Scenario
    start_faults: deque[Fault] = field(default_factory=deque)
    operation_faults: deque[Fault] = field(default_factory=deque)
    result_faults: deque[Fault] = field(default_factory=deque)

    @classmethod
    def create(cls, scenario: Scenario) -> ScenarioState:
        return cls(
            scenario=scenario,
            start_faults=deque(scenario.start_faults),
            operation_faults=deque(scenario.operation_faults),
            result_faults=deque(scenario.result_faults),
        )

    def to_json(self) -> dict[str, Any]:
        out = self.scenario.to_json()
        out["remaining"] = {
            "startFaults": len(self.start_faults),
            "operationFaults": len(self.operation_faults),
            "resultFaults": len(self.result_faults),
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
