"""azure-core's long-running-operation poller, as every Azure SDK uses it, is a real client of this API.

`LROBasePolling` (and `AsyncLROBasePolling`) pick `LocationPolling` for an answer with a `Location` header
(azure/core/polling/base_polling.py, `LocationPolling.can_poll`: `"location" in response.headers`), poll it while
it answers 202 and stop at the first 200 (`LocationPolling.get_status`); between polls they wait the answer's
`Retry-After` (`_extract_delay`: `get_retry_after(...)`, else the poller's own interval); `continuation_token()` and
`from_continuation_token` resume a poller elsewhere. A 4xx while polling raises `HttpResponseError`, which reads
the body as OData v4 (azure/core/exceptions.py, `ODataV4Format.__init__`: `code`, `message`, `target`), so a
problem body must carry `message` for the error to be readable (`Message: None` otherwise).

The pollers run as shipped; the only subclass records each wait it makes (`_sleep`) beside the `Retry-After` of the
answer it waited after, and then waits as the original does.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from azure.core import AsyncPipelineClient, PipelineClient
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineResponse
from azure.core.polling import AsyncLROPoller, LROPoller
from azure.core.polling.async_base_polling import AsyncLROBasePolling
from azure.core.polling.base_polling import LROBasePolling
from azure.core.rest import HttpRequest

from .harness import Bridge, Emulator, new_item

OWN_INTERVAL = 30.0  # the pollers' own wait without Retry-After: a test that waited it would time out


class RecordingPolling(LROBasePolling):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[tuple[float, str | None]] = []

    def _sleep(self, delay: float) -> None:
        self.waits.append((delay, self._pipeline_response.http_response.headers.get("retry-after")))
        super()._sleep(delay)


class AsyncRecordingPolling(AsyncLROBasePolling):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[tuple[float, str | None]] = []

    async def _sleep(self, delay: float) -> None:
        self.waits.append((delay, self._pipeline_response.http_response.headers.get("retry-after")))
        await super()._sleep(delay)


def record(pipeline_response: PipelineResponse[Any, Any]) -> dict[str, Any]:
    """The deserialization callback: the final answer's body (the record)."""
    return json.loads(pipeline_response.http_response.text())  # type: ignore[no-any-return]


def body(item: str, **fields: Any) -> dict[str, Any]:
    return {"workbook": f"/me/drive/items/{item}", "action": "createSession", **fields}


def begin(client: PipelineClient[Any, Any], bridge: Bridge, start: dict[str, Any]) -> LROPoller[dict[str, Any]]:
    """What a generated Azure SDK method `begin_start` does: the initial request, then an LROPoller."""
    initial = client.send_request(
        HttpRequest("POST", f"{bridge.api}/operations", json=start), _return_pipeline_response=True
    )
    assert initial.http_response.status_code == 202, initial.http_response.text()
    return LROPoller(client, initial, record, RecordingPolling(timeout=OWN_INTERVAL))


def assert_waited_retry_after(waits: list[tuple[float, str | None]]) -> None:
    assert waits, "the poller never waited: the operation finished before its first poll"
    for delay, retry_after in waits:
        assert retry_after is not None and delay == float(retry_after), waits


@pytest.fixture(scope="module")
def client(bridge: Bridge) -> Any:
    with PipelineClient(bridge.api) as pipeline:
        yield pipeline


def test_the_poller_follows_the_202s_to_the_200_waiting_retry_after(
    client: PipelineClient[Any, Any], bridge: Bridge, emulator: Emulator
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=2)
    poller = begin(client, bridge, body(item))
    result = poller.result(timeout=90)
    assert poller.status() == "Succeeded"
    assert result["status"] == "succeeded" and result["result"]["persistChanges"] is True
    polling = poller.polling_method()
    assert isinstance(polling, RecordingPolling)
    assert polling._operation.__class__.__name__ == "LocationPolling"
    assert "/api/status/" in polling._operation.get_polling_url()  # it polls the signed Location
    assert_waited_retry_after(polling.waits)


def test_a_poller_resumes_from_its_continuation_token(
    client: PipelineClient[Any, Any], bridge: Bridge, emulator: Emulator
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=3)
    initial = client.send_request(
        HttpRequest("POST", f"{bridge.api}/operations", json=body(item)), _return_pipeline_response=True
    )
    assert initial.http_response.status_code == 202
    token = LROBasePolling(timeout=OWN_INTERVAL)
    token.initialize(client, initial, record)
    saved = token.get_continuation_token()  # what a process keeps before it stops

    resumed = LROPoller.from_continuation_token(
        RecordingPolling(timeout=OWN_INTERVAL), saved, client=client, deserialization_callback=record
    )
    result = resumed.result(timeout=90)
    assert result["status"] == "succeeded"
    assert result["id"] == json.loads(initial.http_response.text())["id"]


def test_a_failed_operation_with_fail_on_error_raises_a_readable_error(
    client: PipelineClient[Any, Any], bridge: Bridge, emulator: Emulator
) -> None:
    item = new_item()
    emulator.scenario(item, runningPolls=1, outcome="failed")
    poller = begin(client, bridge, body(item, failOnError=True))
    with pytest.raises(HttpResponseError) as raised:
        poller.result(timeout=90)
    error = raised.value
    assert error.status_code == 422
    problem = error.response.json()  # type: ignore[union-attr]
    assert problem["detail"], problem  # the operation's error message
    assert error.error is not None
    assert (error.error.code, error.error.message) == (problem["code"], problem["detail"])
    assert "Message: None" not in str(error) and problem["detail"] in str(error)


def test_a_refused_request_reads_as_an_odata_error_naming_its_field(
    client: PipelineClient[Any, Any], bridge: Bridge
) -> None:
    answer = client.send_request(HttpRequest("GET", f"{bridge.api}/operations", params={"top": "0"}))
    with pytest.raises(HttpResponseError) as raised:
        answer.raise_for_status()  # HttpResponseError(response=...), as a generated SDK method raises for a 4xx
    error = raised.value
    assert error.status_code == 400
    assert error.error is not None
    assert (error.error.code, error.error.target) == ("invalidRequest", "top")
    assert error.error.message == answer.json()["detail"]


def test_the_async_poller_follows_waits_resumes_and_reads_the_failure(bridge: Bridge, emulator: Emulator) -> None:
    async def scenario() -> None:
        async with AsyncPipelineClient(bridge.api) as aclient:

            async def abegin(start: dict[str, Any]) -> AsyncLROPoller[dict[str, Any]]:
                initial = await aclient.send_request(
                    HttpRequest("POST", f"{bridge.api}/operations", json=start), _return_pipeline_response=True
                )
                assert initial.http_response.status_code == 202
                return AsyncLROPoller(aclient, initial, record, AsyncRecordingPolling(timeout=OWN_INTERVAL))

            ok, resumed, failing = new_item(), new_item(), new_item()
            emulator.scenario(ok, runningPolls=2)
            emulator.scenario(resumed, runningPolls=3)
            emulator.scenario(failing, runningPolls=1, outcome="failed")

            poller = await abegin(body(ok))
            assert (await asyncio.wait_for(poller.result(), 90))["status"] == "succeeded"
            polling = poller.polling_method()
            assert isinstance(polling, AsyncRecordingPolling)
            assert_waited_retry_after(polling.waits)

            saved = (await abegin(body(resumed))).continuation_token()
            again = AsyncLROPoller.from_continuation_token(
                AsyncRecordingPolling(timeout=OWN_INTERVAL), saved, client=aclient, deserialization_callback=record
            )
            assert (await asyncio.wait_for(again.result(), 90))["status"] == "succeeded"

            failed = await abegin(body(failing, failOnError=True))
            with pytest.raises(HttpResponseError) as raised:
                await asyncio.wait_for(failed.result(), 90)
            problem = json.loads(raised.value.response.text())  # type: ignore[union-attr]
            assert raised.value.error is not None and raised.value.error.message == problem["detail"]
            assert "Message: None" not in str(raised.value)

    asyncio.run(scenario())
