"""Problem bodies (shared/api/problems.py) read by both kinds of client: RFC 9457 readers (type, title, status,
detail, instance) and OData v4 readers such as azure-core's `ODataV4Format` (code, message, target: see
azure/core/exceptions.py, `ODataV4Format.__init__`, which reads them from the top-level object)."""

from __future__ import annotations

from azure.core.exceptions import ODataV4Format

from shared.api.problems import FieldError, Problem, invalid


def test_rfc_9457_members_stay_and_message_mirrors_detail() -> None:
    body = Problem(422, "GenericFileOpenError", "The operation failed", "The file could not be opened").body("/x")
    assert {k: body[k] for k in ("type", "title", "status", "detail", "instance")} == {
        "type": "https://github.com/excel-async-bridge/docs/problems/GenericFileOpenError",
        "title": "The operation failed",
        "status": 422,
        "detail": "The file could not be opened",
        "instance": "/x",
    }
    odata = ODataV4Format(body)
    assert (odata.code, odata.message, odata.target) == ("GenericFileOpenError", "The file could not be opened", None)
    assert "Message: None" not in str(odata)


def test_without_detail_the_message_is_the_title() -> None:
    body = Problem(404, "notFound", "No such console file").body()
    assert "detail" not in body
    assert ODataV4Format(body).message == "No such console file"


def test_the_field_at_fault_is_odata_target_too() -> None:
    body = invalid([FieldError("continuationToken", "use nextLink"), FieldError("top", "1-100")]).body()
    assert body["field"] == body["target"] == "continuationToken"
    odata = ODataV4Format(body)
    assert (odata.code, odata.target) == ("invalidRequest", "continuationToken")
    assert odata.message == body["detail"] == "Check: continuationToken, top"
