"""Timer triggers: run each timer function on its NCRONTAB schedule, or now when asked (the admin API).

Modelled on the timer extension as the Functions docs describe it (functions-bindings-timer.md):
- the schedule's next occurrence is computed from now in UTC (devhost/ncrontab.py);
- ``runOnStartup``: "If true, the function is invoked when the runtime starts";
- "If a function execution takes longer than the timer interval, another execution won't be triggered until
  after the current invocation is complete": one scheduled run at a time per function;
- the function receives a ``TimerRequest`` (``past_due``, ``schedule_status`` with ``Last``/``Next``/
  ``LastUpdated``). ``useMonitor`` persists that status in the host's storage account so a missed occurrence
  runs late as past-due; devhost keeps it in memory only, so nothing is past-due after a restart.
- singleton: the real host runs a timer function on one instance at a time (a blob lease); two devhosts on one
  storage account both run it (the app's purge is idempotent for this reason among others).
Manual runs (functions-manually-run-non-http.md: ``POST /admin/functions/<name>`` with ``{"input": ""}``,
answered 202 Accepted) start an invocation at once, as the host does, without waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from azure.functions.timer import TimerRequest

from devhost.loader import InvocationContext, TimerFunction, invoke_user_function

logger = logging.getLogger("devhost.timer")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class TimerRunner:
    """Runs one timer function on its schedule until stopped."""

    def __init__(self, function: TimerFunction, function_directory: str = "") -> None:
        self.function = function
        self.function_directory = function_directory
        self.last: datetime | None = None
        self.runs = 0
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._manual: set[asyncio.Task[bool]] = set()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name=f"timer-{self.function.name}")

    async def _loop(self) -> None:
        if self.function.run_on_startup:
            await self.invoke("startup")
        while not self._stopping.is_set():
            now = datetime.now(UTC)
            due = self.function.schedule.next_after(now)
            with contextlib.suppress(TimeoutError):
                # waiting for the next occurrence (or for stop), not standing in for synchronisation
                await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, (due - now).total_seconds()))
                return
            await self.invoke("schedule")

    def trigger_now(self) -> None:
        """Start an invocation now (the admin API) without waiting for it."""
        task = asyncio.create_task(self.invoke("manual"), name=f"timer-{self.function.name}-manual")
        self._manual.add(task)
        task.add_done_callback(self._manual.discard)

    async def invoke(self, reason: str) -> bool:
        async with self._lock:  # one run at a time, as the timer extension does
            now = datetime.now(UTC)
            status: dict[str, Any] = {
                "Last": _iso(self.last) if self.last else None,
                "Next": _iso(self.function.schedule.next_after(now)),
                "LastUpdated": _iso(now),
            }
            request = TimerRequest(past_due=False, schedule_status=status, schedule={"AdjustForDST": True})
            kwargs: dict[str, Any] = {self.function.binding_name: request}
            invocation_id = str(uuid.uuid4())
            if self.function.wants_context:
                kwargs["context"] = InvocationContext(invocation_id, self.function.name, self.function_directory)
            started = time.monotonic()
            try:
                await invoke_user_function(self.function.user_function, kwargs)
            except Exception:
                logger.exception(
                    "Executed 'Functions.%s' (Failed, Id=%s, %s)", self.function.name, invocation_id, reason
                )
                return False
            finally:
                self.last = now
                self.runs += 1
            logger.info(
                "Executed 'Functions.%s' (Succeeded, Id=%s, %s, Duration=%.0fms)",
                self.function.name,
                invocation_id,
                reason,
                (time.monotonic() - started) * 1000,
            )
            return True

    async def stop(self) -> None:
        self._stopping.set()
        tasks: list[asyncio.Task[Any]] = [t for t in (self._loop_task, *self._manual) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
