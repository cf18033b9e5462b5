"""The poll queue: one message per operation in flight, re-sent with a visibility delay per poll."""

from __future__ import annotations

import json
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from .polling import MAX_VISIBILITY_SECONDS, PollState

MESSAGE_VERSION = 1


class BadMessage(ValueError):
    """The message is not one of ours (or not this version): it is dropped, never retried."""


def encode(state: PollState) -> str:
    return json.dumps(
        {
            "v": MESSAGE_VERSION,
            "id": state.operation_id,
            "gen": state.generation,
            "polls": state.polls,
            "transient": state.transient_failures,
        },
        separators=(",", ":"),
    )


def decode(text: str) -> PollState:
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise BadMessage("not JSON") from None
    if not isinstance(raw, dict) or raw.get("v") != MESSAGE_VERSION:
        raise BadMessage("unknown message version")
    if not isinstance(raw.get("id"), str):
        raise BadMessage("missing operation id")
    try:
        state = PollState(raw["id"], int(raw["gen"]), int(raw.get("polls", 0)), int(raw.get("transient", 0)))
    except (KeyError, TypeError, ValueError):
        raise BadMessage("missing or malformed fields") from None
    if state.generation < 0 or state.polls < 0 or state.transient_failures < 0:
        raise BadMessage("negative counters")
    return state


@dataclass
class PollQueue:
    client: QueueClient

    async def close(self) -> None:
        await self.client.close()

    async def ensure_queue(self) -> None:
        try:
            await self.client.create_queue()
        except ResourceExistsError:
            pass

    async def send(self, state: PollState, delay: int) -> None:
        await self.client.send_message(
            encode(state), visibility_timeout=max(0, min(delay, MAX_VISIBILITY_SECONDS)), time_to_live=-1
        )
