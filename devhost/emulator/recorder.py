"""Request log of every non-admin request. Never stores a token."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["token", "entra", "start", "operation", "result", "other"]

_SECRET_QUERY = re.compile(r"(?i)(^|&)(access_token|token|code|client_secret|assertion|sig)=[^&]*")


def redact_query(query: str) -> str:
    """Blank out query parameters that could carry a credential."""
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{m.group(2)}=REDACTED", query)


@dataclass
class RequestRecord:
    seq: int
    time: float
    method: str
    host: str | None
    path: str
    query: str
    kind: Kind = "other"
    item: str | None = None
    operation_id: str | None = None
    action: str | None = None
    auth: str = "none"
    status: int | None = None
    prefer: str | None = None
    workbook_session_id: str | None = None
    client_request_id: str | None = None
    user: str | None = None
    """Graph: the token's upn/oid (delegated), ``app:<client id>``/``app:msi`` (app-only), None (no valid token)."""
    grant_type: str | None = None
    """Entra token endpoint: the OAuth grant type (never the token, assertion or secret)."""
    phase: str | None = None
    """Operation GETs: the phase the answer reported (notStarted, running, succeeded, failed)."""
    contention: str | None = None
    """Writes refused or doomed because the workbook was busy: throttled, conflict or merge."""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "query": self.query,
            "kind": self.kind,
            "item": self.item,
            "operationId": self.operation_id,
            "action": self.action,
            "auth": self.auth,
            "status": self.status,
            "prefer": self.prefer,
            "workbookSessionId": self.workbook_session_id,
            "clientRequestId": self.client_request_id,
            "user": self.user,
            "grantType": self.grant_type,
            "phase": self.phase,
            "contention": self.contention,
        }


class Recorder:
    def __init__(self) -> None:
        self._records: list[RequestRecord] = []
        self._seq = 0

    def begin(
        self,
        method: str,
        host: str | None,
        path: str,
        query: str,
        prefer: str | None,
        workbook_session_id: str | None,
        client_request_id: str | None,
    ) -> RequestRecord:
        self._seq += 1
        record = RequestRecord(
            seq=self._seq,
            time=time.time(),
            method=method,
            host=host,
            path=path,
            query=redact_query(query),
            prefer=prefer,
            workbook_session_id=workbook_session_id,
            client_request_id=client_request_id,
        )
        self._records.append(record)
        return record

    def list(self, item: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        for record in sorted(self._records, key=lambda r: r.seq):
            if item is not None and record.item != item:
                continue
            if kind is not None and record.kind != kind:
                continue
            out.append(record.to_json())
        return out

    def stats(self) -> dict[str, Any]:
        """Counts for benches: requests by kind, and the contention answers (throttled = 429s; conflicts =
        409s plus accepted writes doomed to a merge conflict)."""
        kinds: dict[str, int] = {}
        for record in self._records:
            kinds[record.kind] = kinds.get(record.kind, 0) + 1
        marks = [record.contention for record in self._records]
        return {
            "requests": kinds,
            "contention": {
                "throttled": marks.count("throttled"),
                "conflicts": marks.count("conflict") + marks.count("merge"),
                "merge": marks.count("merge"),
            },
        }

    def reset(self) -> None:
        self._records.clear()
        self._seq = 0
