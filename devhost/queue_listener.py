"""Queue-trigger listener mirroring the Functions host's queue processing."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Protocol

from azure.functions.queue import QueueMessage as FuncQueueMessage

from devhost.loader import InvocationContext, QueueFunction, QueueOptions, invoke_user_function

logger = logging.getLogger("devhost.queue")

MIN_POLL_INTERVAL = 0.1


class QueueClientLike(Protocol):
    """The subset of azure.storage.queue.aio.QueueClient used here."""

    def receive_messages(self, **kwargs: Any) -> Any: ...

    def update_message(
        self, message: Any, pop_receipt: str | None = ..., content: object | None = ..., **kwargs: Any
    ) -> Awaitable[Any]: ...

    def delete_message(self, message: Any, pop_receipt: str | None = ..., **kwargs: Any) -> Awaitable[None]: ...

    def send_message(self, content: Any, **kwargs: Any) -> Awaitable[Any]: ...


class MessageDecodeError(Exception):
    pass


def decode_message(content: Any, encoding: str) -> bytes:
    """Decode raw queue message text per host.json ``messageEncoding``."""
    if content is None:
        return b""
    if isinstance(content, bytes):
        text_bytes = content
    else:
        text_bytes = str(content).encode("utf-8")
    if encoding == "none":
        return text_bytes
    try:
        return base64.b64decode(text_bytes, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MessageDecodeError(f"message is not valid base64: {exc}") from exc


class _Lease:
    """Tracks the current pop receipt of a message and renews its visibility while it runs."""

    def __init__(self, client: QueueClientLike, message_id: str, pop_receipt: str, lease_seconds: float) -> None:
        self.client = client
        self.message_id = message_id
        self.pop_receipt = pop_receipt
        self.lease_seconds = lease_seconds
        self.lock = asyncio.Lock()
        self.done = False
        self.renewals = 0

    async def renew_forever(self) -> None:
        interval = max(self.lease_seconds / 2, 0.05)
        while True:
            await asyncio.sleep(interval)
            async with self.lock:
                if self.done:
                    return
                try:
                    updated = await self.client.update_message(
                        self.message_id, self.pop_receipt, visibility_timeout=max(1, round(self.lease_seconds))
                    )
                except Exception as exc:
                    logger.warning("could not renew lease of message %s: %s", self.message_id, exc)
                    continue
                new_receipt = getattr(updated, "pop_receipt", None)
                if new_receipt:
                    self.pop_receipt = new_receipt
                self.renewals += 1


class QueueListener:
    """Polls one queue and invokes one queue-triggered function."""

    def __init__(
        self,
        function: QueueFunction,
        client: QueueClientLike,
        poison_client: QueueClientLike,
        options: QueueOptions,
        *,
        lease_seconds: float = 60,
        function_directory: str = "",
    ) -> None:
        self.function = function
        self.client = client
        self.poison_client = poison_client
        self.options = options
        self.lease_seconds = lease_seconds
        self.function_directory = function_directory
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.max_in_flight_seen = 0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name=f"queue-listener:{self.function.name}")

    async def stop_receiving(self) -> None:
        self._stopping.set()
        self._slot_freed.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), timeout=5)
            except TimeoutError:
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task

    async def drain(self, deadline_seconds: float) -> bool:
        """Wait for in-flight invocations; returns False if some were still running at the deadline."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(set(self._tasks), timeout=deadline_seconds)
        return not pending

    def cancel_in_flight(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _sleep_or_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _run(self) -> None:
        options = self.options
        delay = MIN_POLL_INTERVAL
        empty_polls = 0
        while not self._stopping.is_set():
            while self.in_flight > options.new_batch_threshold and not self._stopping.is_set():
                self._slot_freed.clear()
                await self._slot_freed.wait()
            if self._stopping.is_set():
                break
            try:
                messages = await self._receive(options.batch_size)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("receive from queue %s failed: %s", self.function.queue_name, exc)
                messages = []
            if not messages:
                empty_polls += 1
                delay = min(options.max_polling_interval, MIN_POLL_INTERVAL * (2 ** min(empty_polls - 1, 16)))
                await self._sleep_or_stop(random.uniform(delay / 2, delay))
                continue
            empty_polls = 0
            for message in messages:
                task = asyncio.create_task(self._process(message))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            logger.error("queue message handler crashed", exc_info=task.exception())

    async def _receive(self, count: int) -> list[Any]:
        pager = self.client.receive_messages(
            messages_per_page=count, visibility_timeout=max(1, round(self.lease_seconds)), max_messages=count
        )
        return [message async for message in pager]

    async def _process(self, message: Any) -> None:
        fn = self.function
        options = self.options
        message_id = str(message.id)
        dequeue_count = int(message.dequeue_count or 0)
        lease = _Lease(self.client, message_id, str(message.pop_receipt), self.lease_seconds)
        if dequeue_count > options.max_dequeue_count:
            logger.warning(
                "message %s of queue %s has dequeue count %d > maxDequeueCount %d; moving to poison queue",
                message_id,
                fn.queue_name,
                dequeue_count,
                options.max_dequeue_count,
            )
            await self._poison(message, lease)
            return
        invocation_id = str(uuid.uuid4())
        # The host logs the start of every invocation too (azure-webjobs-sdk FunctionExecutor:
        # "Executing '{functionName}' (Reason='{reason}', Id={invocationId})"), so a log shows which messages a
        # worker held when it died: an "Executing" line with no "Executed" line for the same Id.
        logger.info(
            "Executing 'Functions.%s' (Reason='New queue message detected on '%s'.', Id=%s, MessageId=%s, "
            "DequeueCount=%d)",
            fn.name,
            fn.queue_name,
            invocation_id,
            message_id,
            dequeue_count,
        )
        started = time.monotonic()
        renewer = asyncio.create_task(lease.renew_forever())
        outcome = "Succeeded"
        try:
            body = decode_message(message.content, options.message_encoding)
            trigger = FuncQueueMessage(  # type: ignore[no-untyped-call]
                id=message_id,
                body=body,
                dequeue_count=dequeue_count,
                expiration_time=message.expires_on,
                insertion_time=message.inserted_on,
                time_next_visible=message.next_visible_on,
                pop_receipt=lease.pop_receipt,
            )
            kwargs: dict[str, Any] = {fn.binding_name: trigger}
            if fn.wants_context:
                kwargs["context"] = InvocationContext(invocation_id, fn.name, self.function_directory)
            await invoke_user_function(fn.user_function, kwargs)
        except Exception:
            outcome = "Failed"
            logger.exception("Function %s failed on message %s (dequeue count %d)", fn.name, message_id, dequeue_count)
        finally:
            async with lease.lock:
                lease.done = True
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        duration_ms = (time.monotonic() - started) * 1000
        logger.info(
            "Executed 'Functions.%s' (%s, Id=%s, MessageId=%s, DequeueCount=%d, Duration=%.0fms)",
            fn.name,
            outcome,
            invocation_id,
            message_id,
            dequeue_count,
            duration_ms,
        )
        try:
            if outcome == "Succeeded":
                await self.client.delete_message(message_id, lease.pop_receipt)
            elif dequeue_count >= options.max_dequeue_count:
                logger.warning(
                    "message %s of queue %s failed %d times; moving to %s-poison",
                    message_id,
                    fn.queue_name,
                    dequeue_count,
                    fn.queue_name,
                )
                await self._poison(message, lease)
            else:
                await self.client.update_message(
                    message_id, lease.pop_receipt, visibility_timeout=int(options.visibility_timeout)
                )
        except Exception as exc:
            logger.warning("could not complete message %s of queue %s: %s", message_id, fn.queue_name, exc)
        finally:
            self._slot_freed.set()

    async def _poison(self, message: Any, lease: _Lease) -> None:
        await self.poison_client.send_message(message.content)
        await self.client.delete_message(str(message.id), lease.pop_receipt)
