"""createSession: open a workbook session (`POST {item}/workbook/createSession`); its result is the session's
`{id, persistChanges}`, from `sessionInfoResource(key=...)`."""

from __future__ import annotations

from typing import Any

from shared.graph.actions.params import Flag
from shared.graph.actions.spec import Action, Call


def _result(body: dict[str, Any]) -> Any:
    return {"id": body.get("id"), "persistChanges": body.get("persistChanges")}


CREATE_SESSION = Action(
    name="createSession",
    summary="Open a workbook session; its id goes in sessionId of later requests",
    params=(Flag("persistChanges", "keep the session's changes in the workbook", required=False, default=True),),
    call=lambda p: Call("POST", "/createSession", {"persistChanges": p["persistChanges"]}),
    result=_result,
    result_marker="/sessioninforesource(",
)
