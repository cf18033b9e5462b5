"""RFC 9457 problem details: every client-facing error is one of these.

The body is RFC 9457 (`type`, `title`, `status`, `detail`, `instance`, plus the bridge's `code`, `field`, `errors`)
and also reads as an OData v4 error, which Azure SDK clients parse (azure-core's `ODataV4Format` takes `code`,
`message` and `target` from the top-level object when it has no `error` member): `message` repeats `detail` (or
`title` when there is none) and `target` repeats `field`. Without `message`, azure-core's `HttpResponseError` says
"Message: None" although `detail` holds the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://github.com/excel-async-bridge/docs/problems/"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


@dataclass
class Problem(Exception):
    """Raised anywhere in request handling; rendered by function_app as application/problem+json."""

    status: int
    code: str
    title: str
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.detail or self.title}"

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            out["detail"] = self.detail
        out["message"] = self.detail or self.title  # OData v4 readers (azure-core): the human-readable text
        if instance:
            out["instance"] = instance
        if self.errors:
            out["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
            out["field"] = out["target"] = self.errors[0].field  # OData v4's `target`: the field at fault
        out.update(self.extra)
        return out


def invalid(errors: list[FieldError]) -> Problem:
    fields = ", ".join(e.field for e in errors)
    return Problem(400, "invalidRequest", "The request is not valid", f"Check: {fields}", errors)


def not_found(operation_id: str) -> Problem:
    return Problem(404, "operationNotFound", "No such operation", f"There is no operation {operation_id!r}.")
