"""Continuation tokens over HTTP, against a bridge behind (emulated) App Service Authentication, so owners differ:
every token a caller did not get from its own list's nextLink is a 400 problem naming `continuationToken`, never a
page and never a 5xx; the tokens it did get page to the end, for the owner index and for the read-all scan."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from .harness import Bridge, BridgeFactory, Emulator, new_item
from .test_ownership import AUDIENCE, TENANT, as_user


@pytest.fixture(scope="module")
def guarded(make_bridge: BridgeFactory, emulator: Emulator) -> Bridge:
    return make_bridge(
        "pagetokens",
        DEVHOST_AUTH_ISSUER=emulator.issuer(TENANT),
        DEVHOST_AUTH_AUDIENCES=AUDIENCE,
        DEVHOST_AUTH_ALLOWED_TENANTS=TENANT,
    )


@pytest.fixture(scope="module")
def started(guarded: Bridge, emulator: Emulator) -> dict[str, list[str]]:
    """Four operations of ada (two succeeded at once, two still active), two of bob."""
    made: dict[str, list[str]] = {"ada": [], "bob": []}
    for name, running in (("ada", False), ("ada", True), ("ada", False), ("ada", True), ("bob", False), ("bob", True)):
        item = new_item()
        emulator.scenario(item, runningPolls=10_000) if running else emulator.scenario(item, mode="sync")
        answer = guarded.client.post(
            f"{guarded.api}/operations",
            headers=as_user(emulator, name),
            json={"workbook": f"/me/drive/items/{item}", "action": "createSession"},
        )
        assert answer.status_code in (200, 202), answer.text
        made[name].append(answer.json()["id"])
    return made


def page(bridge: Bridge, headers: dict[str, str], **params: str) -> httpx.Response:
    return bridge.client.get(f"{bridge.api}/operations", headers=headers, params=params)


def token_of(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    return parse_qs(urlsplit(answer.json()["nextLink"]).query)["continuationToken"][0]


def assert_refused(answer: httpx.Response) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == "continuationToken" and "value" not in answer.json()


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_valid_tokens_page_to_the_end_for_an_owner_and_for_read_all(
    guarded: Bridge, emulator: Emulator, started: dict[str, list[str]]
) -> None:
    admin = as_user(emulator, "admin", ["Operations.ReadAll"])
    for headers, expected in (
        (as_user(emulator, "ada"), set(started["ada"])),
        (admin, {*started["ada"], *started["bob"]}),
    ):
        seen: list[str] = []
        params = {"top": "1"}
        for _ in range(20):
            answer = page(guarded, headers, **params)
            assert answer.status_code == 200, answer.text
            seen += [r["id"] for r in answer.json()["value"]]
            if "nextLink" not in answer.json():
                break
            params = {"top": "1", "continuationToken": token_of(answer)}
        assert set(seen) == expected and len(seen) == len(set(seen))


def test_every_kind_of_token_not_issued_for_this_list_is_a_400(
    guarded: Bridge, emulator: Emulator, started: dict[str, list[str]]
) -> None:
    ada, bob = as_user(emulator, "ada"), as_user(emulator, "bob")
    admin = as_user(emulator, "admin", ["Operations.ReadAll"])
    adas = token_of(page(guarded, ada, top="1"))
    succeeded = token_of(page(guarded, ada, top="1", status="succeeded"))
    admins = token_of(page(guarded, admin, top="1"))

    # one character flipped, at every position of the token
    flips = [adas[:i] + ("A" if adas[i] != "A" else "B") + adas[i + 1 :] for i in range(len(adas))]
    for token in flips:
        assert_refused(page(guarded, ada, top="1", continuationToken=token))
    # forged storage keys, on the read-all scan (which once passed them to Table Storage) and on an own list
    for forged in (
        {"PartitionKey": "1!48!b3duZXItZmFrZQ--", "RowKey": "1!12!b3BlcmF0aW9u"},
        {"nextpartitionkey": "1!48!b3duZXItZmFrZQ--", "nextrowkey": "1!12!b3BlcmF0aW9u"},
    ):
        for headers in (admin, ada):
            assert_refused(page(guarded, headers, top="5", continuationToken=b64(json.dumps(forged).encode())))
    # a lone surrogate (issue 18 item 3: it answered 500)
    assert_refused(page(guarded, ada, top="5", continuationToken=b64(b'{"after":"\\ud800"}')))
    # another owner's token, another filter's token, the read-all scan's token on an own list
    assert_refused(page(guarded, bob, top="1", continuationToken=adas))
    assert_refused(page(guarded, ada, top="1", status="running", continuationToken=succeeded))
    assert_refused(page(guarded, ada, top="1", continuationToken=succeeded))
    assert_refused(page(guarded, ada, top="1", continuationToken=admins))
    # and each still works where it belongs
    for headers, token, extra in ((ada, adas, {}), (ada, succeeded, {"status": "succeeded"}), (admin, admins, {})):
        assert page(guarded, headers, top="1", continuationToken=token, **extra).status_code == 200
