"""How far one poll walks through the app's code: files entered and cross-module calls, for an uneventful poll and
for a finishing one (issue 16, must-show 4).

How it counts: the real poll step runs over the in-process fakes (tests/unit/fakes.py) with `sys.setprofile`
watching every Python call. A *file* counts when a function defined in it runs; a *cross-module call* is a call
whose caller and callee are both the app's code (shared/) and live in different files. Calls into the standard
library, the SDKs and the fakes are not counted, nor are generator resumptions. Setup (seeding the record, the
first message) runs before the profiler starts.

    python -m tools.walk            # a table of both polls
    python -m tools.walk --json     # the same as JSON
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "shared")
RESUMABLE = 0x20 | 0x80 | 0x200  # CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR


class Walk:
    def __init__(self) -> None:
        self.files: set[str] = set()
        self.edges: Counter[tuple[str, str]] = Counter()
        self._started: set[FrameType] = set()  # kept alive while measured, so a resumed frame is recognised

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        callee = frame.f_code.co_filename
        if not callee.startswith(APP):
            return
        if frame.f_code.co_flags & RESUMABLE:
            if frame in self._started:
                return  # a coroutine or generator resumed, not called
            self._started.add(frame)
        self.files.add(callee)
        caller = frame.f_back
        if caller is not None and caller.f_code.co_filename.startswith(APP) and caller.f_code.co_filename != callee:
            self.edges[(_short(caller.f_code.co_filename), _short(callee))] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "cross_module_calls": sum(self.edges.values()),
            "file_list": sorted(_short(f) for f in self.files),
        }


def _short(path: str) -> str:
    return str(Path(path).relative_to(ROOT))


def measure(step: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    walk = Walk()

    async def run() -> None:
        sys.setprofile(walk.profile)
        try:
            await step()
        finally:
            sys.setprofile(None)

    asyncio.run(run())
    return walk.summary()


def polls() -> dict[str, dict[str, Any]]:
    """The two polls, each on a fresh runtime over the fakes, lanes on (the default) and a callback URL."""
    from tools.walk_steps import finishing_poll, uneventful_poll

    return {"uneventful poll": measure(uneventful_poll()), "finishing poll": measure(finishing_poll())}


def main(argv: list[str]) -> None:
    found = polls()
    if "--json" in argv:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    for name, figures in found.items():
        sys.stdout.write(f"{name}: {figures['files']} files, {figures['cross_module_calls']} cross-module calls\n")
        for path in figures["file_list"]:
            sys.stdout.write(f"    {path}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
