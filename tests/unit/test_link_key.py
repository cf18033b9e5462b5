"""The status-link key is never absent (shared/runtime/link_key.py): without STATUS_LINK_KEYS a key is generated once
and kept in the storage account (FakeContainer keeps Put Blob's insert-only rule: overwrite=False on an existing blob
is 409 BlobAlreadyExists, as If-None-Match: * is in Azure), so concurrent first starts agree; the setting still wins
and rotates; a damaged blob stops the worker with a SettingsError naming the blob, never the key."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from urllib.parse import parse_qs

import pytest

from shared.crypto.status_links import LinkRefused
from shared.runtime.link_key import blob_name, with_link_key
from shared.runtime.settings import Settings, SettingsError, load_settings
from tests.unit.fakes import BASE_ENV, FakeContainer

OP = "8285435199999a1b2c3d4e5"
NOW = 1_800_000_000.0
CONFIGURED = "own1:" + base64.b64encode(b"o" * 32).decode()


def settings(**env: str) -> Settings:
    return load_settings({**BASE_ENV, "STATUS_LINK_KEYS": "", **env})


def opens(signer_settings: Settings, query: str) -> bool:
    values = parse_qs(query)
    try:
        signer_settings.status_links.verify(OP, values["se"][0], values["sig"][0], NOW)
    except LinkRefused:
        return False
    return True


def test_without_the_setting_a_key_is_generated_once_and_kept() -> None:
    container = FakeContainer()
    first = asyncio.run(with_link_key(settings(), container))
    assert first.status_links.configured
    stored = json.loads(container.blobs[blob_name(first)])
    assert stored["keyId"] == first.status_links.keys[0][0]
    assert base64.b64decode(stored["key"]) == first.status_links.keys[0][1]
    again = asyncio.run(with_link_key(settings(), container))  # the next start, or another instance
    assert again.status_links == first.status_links
    assert opens(again, first.status_links.query(OP, int(NOW) + 60))


def test_workers_starting_together_agree_on_one_key() -> None:
    container = FakeContainer()

    async def start_many() -> list[Settings]:
        return list(await asyncio.gather(*(with_link_key(settings(), container) for _ in range(5))))

    started = asyncio.run(start_many())
    assert len({s.status_links for s in started}) == 1 and len(container.blobs) == 1


def test_each_bridge_of_an_account_has_its_own_key() -> None:
    container = FakeContainer()
    one = asyncio.run(with_link_key(settings(OPERATIONS_TABLE="bridgeone"), container))
    two = asyncio.run(with_link_key(settings(OPERATIONS_TABLE="bridgetwo"), container))
    assert one.status_links.keys != two.status_links.keys and len(container.blobs) == 2


def test_the_setting_wins_and_a_key_generated_before_still_verifies() -> None:
    container = FakeContainer()
    generated = asyncio.run(with_link_key(settings(), container))
    old_url = generated.status_links.query(OP, int(NOW) + 60)
    configured = asyncio.run(with_link_key(settings(STATUS_LINK_KEYS=CONFIGURED), container))
    assert configured.status_links.keys[0][0] == "own1"  # it signs
    assert configured.status_links.query(OP, 1).split("sig=")[1].startswith("own1.")
    assert opens(configured, old_url)  # links handed out before the setting was added keep working
    fresh = asyncio.run(with_link_key(settings(STATUS_LINK_KEYS=CONFIGURED), FakeContainer()))
    assert [kid for kid, _ in fresh.status_links.keys] == ["own1"]  # nothing generated when the setting is there


def test_the_setting_alone_works_when_storage_cannot_be_read() -> None:
    container = FakeContainer()
    container.fail("download_blob", times=10)
    configured = asyncio.run(with_link_key(settings(STATUS_LINK_KEYS=CONFIGURED), container))
    assert [kid for kid, _ in configured.status_links.keys] == ["own1"]


def test_without_the_setting_storage_failures_stop_the_start() -> None:
    container = FakeContainer()
    container.fail("download_blob", times=10)
    with pytest.raises(Exception, match=r"ServerBusy|503"):
        asyncio.run(with_link_key(settings(), container))


@pytest.mark.parametrize("body", [b"not json", b'{"keyId": "g1", "key": "c2hvcnQ="}', b'{"keyId": "a b", "key": ""}'])
def test_a_damaged_key_blob_is_a_settings_error_naming_the_blob(body: bytes) -> None:
    container = FakeContainer()
    container.blobs[blob_name(settings())] = body
    with pytest.raises(SettingsError, match=r"excel-bridge-secrets/operations/status-link-key\.json is damaged"):
        asyncio.run(with_link_key(settings(), container))
    assert container.blobs[blob_name(settings())] == body  # never overwritten: links signed with it would break


def test_the_key_itself_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    container = FakeContainer()
    with caplog.at_level(logging.DEBUG):
        made = asyncio.run(with_link_key(settings(), container))
    kid, key = made.status_links.keys[0]
    text = caplog.text
    assert "STATUS_LINK_KEYS is not set" in text and kid in text
    for spelling in (base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode(), key.hex()):
        assert spelling not in text
