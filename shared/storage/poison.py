"""Poison queues: count them (for /api/health) and replay or purge them (an operator's command).

The Functions host moves a message that failed maxDequeueCount times to `<queue>-poison` (host.json
`extensions.queues.maxDequeueCount`; azure-functions-facts.md). Usage, with the app's storage settings in
the environment (AzureWebJobsStorage or its identity form, POLL_QUEUE, WEBHOOK_QUEUE):

    python -m shared.storage.poison count
    python -m shared.storage.poison replay --queue operation-polls-poison [--max 100]
    python -m shared.storage.poison purge  --queue webhook-deliveries-poison [--max 100]

`replay` sends each message's body back to the original queue (the name without `-poison`, with our finite
TTL) and then deletes it from the poison queue: a crash in between replays a message twice, which the poll
and delivery steps tolerate (generations, ETags; docs/design.md). `purge` deletes without replaying.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue.aio import QueueClient

from shared.observability import telemetry
from shared.runtime.settings import Settings, load_settings
from shared.runtime.worker import queue_client
from shared.storage.queues import StorageQueue

POISON_SUFFIX = "-poison"
RECEIVE_BATCH = 32  # Get Messages: numofmessages at most 32
LEASE_SECONDS = 60


def poison_queues(settings: Settings) -> list[str]:
    return [settings.poll_queue + POISON_SUFFIX, settings.webhook_queue + POISON_SUFFIX]


def original_queue(poison: str) -> str:
    if not poison.endswith(POISON_SUFFIX) or len(poison) == len(POISON_SUFFIX):
        raise ValueError(f"{poison!r} is not a poison queue (<queue>{POISON_SUFFIX})")
    return poison[: -len(POISON_SUFFIX)]


async def approximate_count(client: QueueClient) -> int:
    """Get Queue Metadata's x-ms-approximate-messages-count; a poison queue not created yet holds 0."""
    try:
        properties = await client.get_queue_properties()
    except ResourceNotFoundError:
        return 0
    return int(properties.approximate_message_count or 0)


async def counts(settings: Settings, clients: dict[str, QueueClient] | None = None) -> dict[str, int]:
    owned = clients is None
    clients = (
        clients if clients is not None else {name: queue_client(settings, name) for name in poison_queues(settings)}
    )
    try:
        values = await asyncio.gather(*(approximate_count(client) for client in clients.values()))
        found = dict(zip(clients, values, strict=True))
        for name, count in found.items():
            telemetry.poison_messages(name, count)  # the bridge.queue.poison gauge (the workbook charts it)
        return found
    finally:
        if owned:
            await asyncio.gather(*(client.close() for client in clients.values()))


def _life(settings: Settings, original: str) -> float:
    return settings.operation_timeout if original == settings.poll_queue else settings.webhook_retry_window


async def drain(settings: Settings, poison: str, *, replay: bool, limit: int) -> int:
    """Replay (or just delete) up to `limit` messages of one poison queue; returns how many."""
    original = original_queue(poison)
    source = queue_client(settings, poison)
    target = StorageQueue(queue_client(settings, original), _life(settings, original))
    done = 0
    try:
        while done < limit:
            batch = [
                m
                async for m in source.receive_messages(
                    messages_per_page=min(RECEIVE_BATCH, limit - done),
                    visibility_timeout=LEASE_SECONDS,
                    max_messages=min(RECEIVE_BATCH, limit - done),
                )
            ]
            if not batch:
                break
            for message in batch:
                if replay:
                    await target.send_text(str(message.content), 0)
                await source.delete_message(message)
                done += 1
    except ResourceNotFoundError:
        pass  # no poison queue: nothing to do
    finally:
        await source.close()
        await target.close()
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.storage.poison", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("count", "replay", "purge"))
    parser.add_argument("--queue", help="the poison queue, e.g. operation-polls-poison (replay, purge)")
    parser.add_argument("--max", type=int, default=1000, help="at most this many messages (default 1000)")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.action == "count":
        for name, count in asyncio.run(counts(settings)).items():
            print(f"{name}\t{count}")
        return 0
    if not args.queue:
        parser.error("--queue is required for replay and purge")
    if args.queue not in poison_queues(settings):
        parser.error(f"--queue must be one of {', '.join(poison_queues(settings))}")
    done = asyncio.run(drain(settings, args.queue, replay=args.action == "replay", limit=max(0, args.max)))
    print(f"{'replayed' if args.action == 'replay' else 'purged'} {done} message(s) of {args.queue}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
