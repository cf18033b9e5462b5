"""Signed status URLs end to end: the `Location` a poller can follow without sending any credential.

Modelled callers: Logic Apps follows `Location` re-sending only the action's `authentication` (custom headers
such as x-functions-key are dropped: Azure/logicapps#611); Power Automate sends no credential to the status URL
(MicrosoftDocs/architecture-center#4307). Both therefore GET the Location exactly as given, with no header.
"""

from __future__ import annotations

import contextlib
from urllib.parse import parse_qs, urlsplit

import httpx
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from devhost.services import AzuritePorts
from tests.support import wait_for

from .harness import Bridge, BridgeFactory, Emulator, new_item


def _start(bridge: Bridge, emulator: Emulator, running_polls: int = 2) -> httpx.Response:
    item = new_item()
    emulator.scenario(item, runningPolls=running_polls)
    response = bridge.start(
        {"workbook": f"/me/drive/items/{item}", "action": "createSession", "parameters": {"persistChanges": True}}
    )
    assert response.status_code == 202, response.text
    return response


def test_location_is_a_signed_url_that_opens_the_operation_with_no_credential(
    bridge: Bridge, emulator: Emulator
) -> None:
    response = _start(bridge, emulator)
    record, location = response.json(), response.headers["location"]
    parts = urlsplit(location)
    assert parts.path == f"/api/status/{record['id']}"
    assert set(parse_qs(parts.query)) == {"se", "sig"}
    assert record["links"]["self"] == location == record["links"]["cancel"]

    bare = httpx.Client(timeout=10)  # a poller that sends nothing but the URL
    seen: list[int] = []
    locations: set[str] = set()

    def finished() -> bool:
        answer = bare.get(location)
        seen.append(answer.status_code)
        assert answer.status_code in (200, 202), answer.text
        if answer.status_code == 202:
            locations.add(answer.headers["location"])
            assert int(answer.headers["retry-after"]) >= 1
        return answer.status_code == 200

    wait_for(finished, 60, "the signed status URL to answer 200", interval=0.3)
    assert 202 in seen
    assert locations == {location}  # the same Location on every 202 (logic-apps-create-api-app.md)
    assert bare.get(location).json()["status"] == "succeeded"


def test_a_signed_url_opens_nothing_else(bridge: Bridge, emulator: Emulator) -> None:
    one, other = _start(bridge, emulator), _start(bridge, emulator)
    query = urlsplit(one.headers["location"]).query
    bare = httpx.Client(timeout=10)
    wrong = bare.get(f"{bridge.api}/status/{other.json()['id']}?{query}")
    assert wrong.status_code == 403 and wrong.json()["code"] == "statusLinkRefused"
    assert "sig=" not in wrong.text  # the problem's instance carries no credential
    missing = bare.get(f"{bridge.api}/status/{one.json()['id']}")
    assert missing.status_code == 401 and missing.json()["code"] == "statusLinkRefused"
    tampered = bare.get(one.headers["location"][:-3] + "AAA")
    assert tampered.status_code == 403
    # the signed URL is not a key for other routes
    listing = bare.get(f"{bridge.api}/operations?{query}")
    assert all("sig=" not in item["links"]["self"] for item in listing.json()["value"])


def test_delete_on_the_signed_url_cancels(bridge: Bridge, emulator: Emulator) -> None:
    response = _start(bridge, emulator, running_polls=50)
    location = response.headers["location"]
    canceled = httpx.delete(location, timeout=10)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert httpx.get(location, timeout=10).json()["status"] == "canceled"


def test_a_url_read_two_ways_is_refused(bridge: Bridge, emulator: Emulator) -> None:
    # Issue 18 item 9b: `se` with leading zeros (the same signature for a second spelling of the URL), and a second
    # `se` or `sig` (the first was taken, so a URL could carry a valid pair plus anything): each is a 403 now.
    response = _start(bridge, emulator, running_polls=50)
    location = response.headers["location"]
    query = parse_qs(urlsplit(location).query)
    se, sig = query["se"][0], query["sig"][0]
    base = location.split("?", 1)[0]
    bare = httpx.Client(timeout=10)
    assert bare.get(location).status_code == 202  # the URL as given still opens
    for spelled in (
        f"{base}?se=0{se}&sig={sig}",
        f"{base}?se={se}&sig={sig}&sig=k1.forged",
        f"{base}?se={se}&se=9{se}&sig={sig}",
        f"{base}?se={se}&sig={sig}&se={se}",
    ):
        for method in ("GET", "DELETE"):
            answer = bare.request(method, spelled)
            assert answer.status_code == 403, (spelled, answer.text)
            assert answer.json()["code"] == "statusLinkRefused"
    assert bare.get(location).json()["status"] != "canceled"  # no refused DELETE canceled it


def test_a_bridge_whose_stored_key_is_damaged_is_red_and_never_hands_out_an_unsigned_location(
    make_bridge: BridgeFactory, azurite: AzuritePorts
) -> None:
    # Without STATUS_LINK_KEYS the key lives in the storage account (shared/runtime/link_key.py). If that blob is not a
    # key, the bridge must not fall back to the keyed route (which Logic Apps and Power Automate cannot poll): its
    # health is red and names the blob, and requests are refused as misconfigured.
    with ContainerClient.from_connection_string(azurite.connection_string, "excel-bridge-secrets") as container:
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        container.upload_blob("damagedkeyops/status-link-key.json", b'{"keyId": "g1", "key": "c2hvcnQ="}')
    damaged = make_bridge("damagedkey", STATUS_LINK_KEYS="")
    health = damaged.client.get(f"{damaged.api}/health")
    assert health.status_code == 503, health.text
    assert health.json()["code"] == "misconfigured"
    assert "excel-bridge-secrets/damagedkeyops/status-link-key.json is damaged" in health.json()["detail"]
    start = damaged.start({"workbook": "/me/drive/items/01DAMAGED", "action": "createSession"})
    assert start.status_code == 500 and start.json()["code"] == "misconfigured", start.text
    assert "location" not in start.headers
    assert "could not get the status-link key" in damaged.service.output()
