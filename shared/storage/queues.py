"""The two queues: polls (one message per operation in flight) and webhook deliveries (one per attempt), sent with
a visibility delay and a finite time-to-live (shared/operations/retention.py). The messages themselves and their
codecs are shared/storage/messages.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from shared.observability import telemetry
from shared.operations.retention import message_ttl
from shared.storage.messages import (
    MAX_VISIBILITY_SECONDS,
    DeliveryTask,
    FanoutTask,
    PollState,
    SubscriptionAttempt,
    Trace,
    encode,
    encode_delivery,
    encode_fanout,
    encode_lane,
    encode_subscription_attempt,
)


@dataclass
class StorageQueue:
    """`life`: how long a message stays useful once visible; its TTL is that plus a margin (retention.py)."""

    client: QueueClient
    life: float = 3600.0

    async def close(self) -> None:
        await self.client.close()

    async def ensure_queue(self) -> None:
        try:
            await self.client.create_queue()
        except ResourceExistsError:
            pass

    async def ping(self) -> None:
        """One cheap read (Get Queue Metadata) to show the queue answers (used by /api/health)."""
        await self.client.get_queue_properties()

    async def send_text(self, text: str, delay: int) -> None:
        """Send a message as it is (the poison replay: it keeps the trace context it had)."""
        visible_in = max(0, min(delay, MAX_VISIBILITY_SECONDS))
        await self.client.send_message(
            text, visibility_timeout=visible_in, time_to_live=message_ttl(visible_in, self.life)
        )

    async def send_traced(self, build: Callable[[Trace], str], delay: int) -> None:
        """Send the message `build` makes with the trace context of a PRODUCER span for this send, so the
        step that processes it is that span's child (one trace per operation across the queue hops)."""
        with telemetry.producer_span(getattr(self.client, "queue_name", None) or "queue") as carrier:
            await self.send_text(build(carrier or None), delay)


class PollQueue(StorageQueue):
    async def send(self, state: PollState, delay: int) -> None:
        await self.send_traced(lambda trace: encode(state, trace), delay)

    async def send_lane(self, lane: str, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_lane(lane, trace), delay)


class DeliveryQueue(StorageQueue):
    """The webhook queue: operation webhook attempts, subscription fan-outs and subscription attempts."""

    async def send(self, task: DeliveryTask, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_delivery(task, trace), delay)

    async def send_fanout(self, task: FanoutTask, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_fanout(task, trace), delay)

    async def send_subscription_attempt(self, task: SubscriptionAttempt, delay: int = 0) -> None:
        await self.send_traced(lambda trace: encode_subscription_attempt(task, trace), delay)
