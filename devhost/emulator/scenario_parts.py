"""The values a scenario is built from, with strict parsing (camelCase JSON): a canned fault (one HTTP answer)
and a drawn operation duration; ScenarioError for any bad scenario, fault or config document."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

DistributionKind = Literal["fixed", "logUniform", "lognormal"]
ACTIONS = ("createSession", "createTableRow", "deleteTableRow")


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


def parse_faults(obj: Any, where: str) -> list[Fault]:
    if not isinstance(obj, list):
        raise ScenarioError(f"'{where}' must be a list of faults")
    return [parse_fault(item, f"{where}[{n}]") for n, item in enumerate(obj)]


@dataclass(frozen=True)
class Duration:
    """How long an operation runs (seconds from its creation), drawn once when the operation is created.

    ``fixed``: ``seconds``. ``logUniform``: log-uniform in [``min``, ``max``]. ``lognormal``: ``median`` *
    exp(N(0, ``sigma``)). ``seed``: draws come from one ``random.Random(seed)`` per scenario, in creation order,
    so a run that creates its operations in the same order draws the same durations.
    """

    kind: DistributionKind
    seconds: float = 0.0
    low: float = 0.0
    high: float = 0.0
    median: float = 0.0
    sigma: float = 0.0
    seed: int | None = None

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.seconds
        if self.kind == "logUniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return self.median * math.exp(rng.gauss(0.0, self.sigma))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"distribution": self.kind}
        if self.kind == "fixed":
            out["seconds"] = self.seconds
        elif self.kind == "logUniform":
            out.update(min=self.low, max=self.high)
        else:
            out.update(median=self.median, sigma=self.sigma)
        if self.seed is not None:
            out["seed"] = self.seed
        return out


_DURATION_FIELDS: dict[str, set[str]] = {
    "fixed": {"seconds"},
    "logUniform": {"min", "max"},
    "lognormal": {"median", "sigma"},
}


def _positive(obj: dict[str, Any], name: str, where: str, *, allow_zero: bool = False) -> float:
    value = obj.get(name)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (value < 0 if allow_zero else value <= 0)
    ):
        bound = "non-negative" if allow_zero else "positive"
        raise ScenarioError(f"{where}.{name}: must be a {bound} number")
    return float(value)


def parse_duration(obj: Any, where: str) -> Duration:
    """``{"distribution": "fixed", "seconds": s}``, ``{"distribution": "logUniform", "min": a, "max": b}`` or
    ``{"distribution": "lognormal", "median": m, "sigma": s}``, each with an optional integer ``seed``."""
    if not isinstance(obj, dict):
        raise ScenarioError(f"{where}: a duration must be a JSON object")
    kind = obj.get("distribution")
    if kind not in _DURATION_FIELDS:
        raise ScenarioError(f"{where}.distribution: must be one of {', '.join(_DURATION_FIELDS)}")
    allowed = _DURATION_FIELDS[kind] | {"distribution", "seed"}
    unknown = set(obj) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s) for {kind}: {', '.join(sorted(unknown))}")
    seed = obj.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ScenarioError(f"{where}.seed: must be an integer")
    if kind == "fixed":
        return Duration("fixed", seconds=_positive(obj, "seconds", where, allow_zero=True), seed=seed)
    if kind == "logUniform":
        low, high = _positive(obj, "min", where), _positive(obj, "max", where)
        if high < low:
            raise ScenarioError(f"{where}.max: must be at least min")
        return Duration("logUniform", low=low, high=high, seed=seed)
    sigma = _positive(obj, "sigma", where, allow_zero=True)
    return Duration("lognormal", median=_positive(obj, "median", where), sigma=sigma, seed=seed)


def parse_action_durations(obj: Any) -> tuple[tuple[str, Duration], ...]:
    if obj is None:
        return ()
    if not isinstance(obj, dict):
        raise ScenarioError("'actionDurations' must be an object keyed by action")
    out = []
    for action, value in obj.items():
        if action not in ACTIONS:
            raise ScenarioError(f"actionDurations.{action}: not an action (one of {', '.join(ACTIONS)})")
        out.append((action, parse_duration(value, f"actionDurations.{action}")))
    return tuple(sorted(out))
