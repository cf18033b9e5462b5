"""The engine's knobs, and the waiting primitive every action uses (cancel- and deadline-aware)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Options:
    # logic-apps-create-api-app.md: "By default, the engine checks every 20 seconds" (without retry-after).
    # Other pages say otherwise, hence a knob.
    default_poll_interval: float = 20.0
    poll_scale: float = 1.0  # multiplies every wait between polls (Retry-After or the default interval)
    retry_scale: float = 1.0  # multiplies every wait between retries (policy interval or Retry-After)
    # logic-apps-limits-and-config.md: outbound request timeout 120 s (multi-tenant).
    request_timeout: float = 120.0
    json_suffix_is_json: bool = False  # see content.py: the doc parses only application/json
    on_subscribe_202: str = "accept"  # "accept" | "poll": does a 202 + Location subscribe answer get polled?
    # limit.timeout expiry: the brief and runAfter's "TimedOut" say TimedOut; workflow-actions-triggers.md
    # "Change asynchronous duration" says "marked as `Cancelled` with the `ActionTimedOut` code".
    timeout_status: str = "TimedOut"
    callback_status: int = 200  # the answer to an accepted callback POST (not documented: a guess)
    repeat_callback_status: int = 409  # a POST to a callback URL whose action is finished (a guess)
    bad_signature_status: int = 401  # a callback POST with a wrong or missing sig (a guess)
    scope_fails_on_any_failure: bool = False  # see engine.py: the docs evaluate a scope's branches
    token_provider: Callable[[str], str] = field(default=lambda audience: f"model-token-for:{audience}")
    rng: random.Random = field(default_factory=lambda: random.Random(8))


class Interrupted(Exception):
    """The wait ended early: the run was canceled, or the action's limit.timeout passed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "cancel" | "timeout"


@dataclass
class Waiter:
    """Waits that end early on cancel or at the action's deadline (time.monotonic())."""

    cancel: asyncio.Event
    deadline: float | None = None

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self) -> None:
        if self.cancel.is_set():
            raise Interrupted("cancel")
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise Interrupted("timeout")

    async def sleep(self, seconds: float) -> None:
        await self.until(asyncio.sleep(max(0.0, seconds)))

    async def until(self, awaitable: Any) -> Any:
        """Await `awaitable`, unless the run is canceled or the deadline passes first."""
        self.check()
        task: asyncio.Future[Any] = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self.cancel.wait())
        try:
            done, _ = await asyncio.wait({task, stopper}, timeout=self.remaining(), return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            raise Interrupted("cancel" if stopper in done else "timeout")
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
