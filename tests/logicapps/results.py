"""What a run of the model leaves behind: the run history a test reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    """One HTTP request an action sent, and the answer's status (None: no answer, e.g. connection refused)."""

    purpose: str  # "request" | "poll" | "subscribe" | "unsubscribe"
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    error: str | None = None
    sent_at: float = 0.0  # time.monotonic()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class ActionResult:
    name: str
    type: str
    status: str = "Waiting"  # Succeeded | Failed | Skipped | TimedOut | Cancelled (| Waiting / Running meanwhile)
    inputs: Any = None
    outputs: Any = None
    code: str | None = None
    error: dict[str, Any] | None = None
    requests: list[RequestRecord] = field(default_factory=list)
    subscribe_status: int | None = None  # HttpWebhook: the subscribe answer's status (after polling, if polled)
    unsubscribe_status: int | None = None
    callback_url: str | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # HttpWebhook: every POST to the callback URL
    start_time: float | None = None
    end_time: float | None = None

    def as_expression_value(self) -> dict[str, Any]:
        """The `actions('<name>')` object (error-exception-handling.md: "The `@result()` item shape is the same as
        the `@actions()` shape": name, inputs, outputs, startTime, endTime, trackingId, clientTrackingId, code,
        status)."""
        value: dict[str, Any] = {"name": self.name, "status": self.status, "code": self.code}
        if self.inputs is not None:
            value["inputs"] = self.inputs
        if self.outputs is not None:
            value["outputs"] = self.outputs
        if self.error is not None:
            value["error"] = self.error
        return value


@dataclass
class RunResult:
    run_name: str
    status: str  # Succeeded | Failed | Cancelled
    actions: dict[str, ActionResult]
    response: tuple[int, Any] | None  # (statusCode, body) of the Response action that ran
    response_headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def statuses(self) -> dict[str, str]:
        return {name: action.status for name, action in self.actions.items()}
