"""Retention decisions (shared/operations/retention.py), the store's stamping of terminal writes, and finite message
TTLs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.graph.lro import PollState
from shared.operations.lifecycle import terminal_state
from shared.operations.record import FAILED, NOT_STARTED, RUNNING, SUCCEEDED, Operation, iso, parse_iso, to_json
from shared.operations.retention import (
    MAX_MESSAGE_TTL_SECONDS,
    expires_at,
    is_expired,
    is_stranded,
    message_ttl,
)
from shared.operations.store import OperationStore
from shared.storage.messages import DeliveryTask
from shared.storage.queues import DeliveryQueue, PollQueue

DAY = 86_400.0
NOW = 1_800_000_000.0


def op(
    status: str = SUCCEEDED,
    created: float = NOW - 40 * DAY,
    completed: float | None = NOW - 31 * DAY,
    updated: float | None = None,
    credential: str | None = None,
) -> Operation:
    return Operation(
        id="0000000000001abcdef01234",
        status=status,
        action="createSession",
        workbook="/me/x",
        operation_url=None,
        created_at=iso(created),
        updated_at=iso(updated or completed or created),
        base_url="http://x/api",
        completed_at=iso(completed) if completed else None,
        credential_sealed=credential,
        owner="alice",
    )


def test_terminal_records_expire_retention_after_completion() -> None:
    assert expires_at(op(), 30 * DAY) == iso(NOW - DAY)
    assert is_expired(op(), 30 * DAY, NOW)
    assert not is_expired(op(completed=NOW - 29 * DAY), 30 * DAY, NOW)  # younger than the window


@pytest.mark.parametrize("status", [NOT_STARTED, RUNNING])
def test_active_records_never_expire(status: str) -> None:
    ancient = op(status=status, created=NOW - 400 * DAY, completed=None)
    assert expires_at(ancient, 30 * DAY) is None
    assert not is_expired(ancient, 30 * DAY, NOW)
    assert not is_expired(ancient.with_(expires_at=iso(NOW - DAY)), 30 * DAY, NOW)  # whatever it says


def test_stranded_is_active_long_past_its_deadline_and_untouched() -> None:
    assert is_stranded(op(status=RUNNING, created=NOW - 3 * DAY, completed=None, updated=NOW - 2 * DAY), 3600, NOW)
    assert not is_stranded(op(status=RUNNING, created=NOW - 3 * DAY, completed=None, updated=NOW - 60), 3600, NOW)
    assert not is_stranded(op(status=RUNNING, created=NOW - 3600, completed=None), 3600, NOW)
    assert not is_stranded(op(status=FAILED, created=NOW - 30 * DAY), 3600, NOW)


@pytest.mark.parametrize(
    ("delay", "life", "expected"),
    [
        (0, 3600, 3600 + DAY),  # a poll: the operation's life plus a day
        (240, 3600, 240 + 3600 + DAY),
        (5, 86_400, 5 + 2 * DAY),  # a webhook attempt: the retry window plus a day
        (0, 7 * DAY, MAX_MESSAGE_TTL_SECONDS),  # bounded by 7 days
        (7 * 24 * 3600, 7 * DAY, 7 * 24 * 3600 + 60),  # but always longer than the visibility delay
    ],
)
def test_message_ttl(delay: int, life: float, expected: float) -> None:
    assert message_ttl(delay, life) == expected


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_message(self, content: str, **kwargs: Any) -> None:
        self.sent.append({"content": content, **kwargs})


def test_our_messages_carry_a_finite_ttl() -> None:
    polls_client, hooks_client = RecordingQueue(), RecordingQueue()
    polls = PollQueue(polls_client, 3600.0)  # type: ignore[arg-type]
    hooks = DeliveryQueue(hooks_client, 86_400.0)  # type: ignore[arg-type]

    async def send() -> None:
        await polls.send(PollState("0000000000001abcdef01234", 0), 30)
        await hooks.send(DeliveryTask("0000000000001abcdef01234", "e1", 1, NOW), 5)

    asyncio.run(send())
    [poll], [hook] = polls_client.sent, hooks_client.sent
    # Put Message: time-to-live -1 is "never expires"; the SDK's default is 7 days. Ours: finite and bounded.
    assert poll["time_to_live"] == 30 + 3600 + DAY and poll["visibility_timeout"] == 30
    assert hook["time_to_live"] == 5 + 2 * DAY
    assert all(0 < m["time_to_live"] <= MAX_MESSAGE_TTL_SECONDS for m in (poll, hook))


class RecordingTable:
    def __init__(self) -> None:
        self.merged: list[dict[str, Any]] = []

    async def update_entity(self, entity: dict[str, Any], **kwargs: Any) -> dict[str, str]:
        self.merged.append(entity)
        return {"etag": "W/2"}

    async def upsert_entity(self, entity: dict[str, Any], **kwargs: Any) -> dict[str, str]:
        return {"etag": "W/3"}  # the owner index entry's status hint


def test_every_terminal_write_stamps_expiry_and_erases_the_sealed_credential() -> None:
    table = RecordingTable()
    store = OperationStore(table, retention_seconds=30 * DAY)  # type: ignore[arg-type]
    active = op(status=RUNNING, created=NOW - 60, completed=None, credential="sealed-token")
    # a path that forgot to erase it (as a hand-written terminal update could)
    ended = active.with_(status=FAILED, completed_at=iso(NOW), updated_at=iso(NOW))
    written = asyncio.run(store.update(ended, {"status", "completed_at", "updated_at"}))
    [entity] = table.merged
    assert entity["CredentialSealed"] == "" and written.credential_sealed is None
    assert parse_iso(entity["ExpiresAt"]) == NOW + 30 * DAY
    assert to_json(written)["expiresAt"] == iso(NOW + 30 * DAY)
    # terminal_state (the common path) ends the same way
    table.merged.clear()
    done = terminal_state(active, SUCCEEDED, NOW)
    asyncio.run(store.update(done, {"status", "completed_at"}))
    assert table.merged[0]["CredentialSealed"] == "" and table.merged[0]["ExpiresAt"] == iso(NOW + 30 * DAY)
    # a non-terminal update leaves both alone
    table.merged.clear()
    asyncio.run(store.update(active.with_(generation=1), {"generation"}))
    assert "ExpiresAt" not in table.merged[0] and "CredentialSealed" not in table.merged[0]
