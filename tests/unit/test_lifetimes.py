"""Every kind of thing the bridge writes has a documented lifetime, and the purge enforces it (issue 18, item 6).

Before: the `durations` history table never expired (one row per owner and workbook, forever), and neither did a
lane entity or an owner index entry that nothing touched again; and the docs said poison messages wait until
someone looks at them, while the host copies them with Storage's default time-to-live of 7 days (below).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from shared.lanes.store import LANE_PREFIX, LANE_ROW_KEY, lane_key
from shared.operations import purge
from shared.operations.listing import INDEX_PREFIX, index_partition
from shared.operations.record import NOT_STARTED, Operation, iso, new_operation_id
from shared.operations.retention import DAY
from shared.operations.store import IDEMPOTENCY_PREFIX
from shared.runtime.link_key import CONTAINER as LINK_KEY_CONTAINER
from shared.schedule.history import history_keys
from shared.subscriptions.record import DELIVERY_ROW_PREFIX, FANOUT_ROW_KEY, PARTITION_PREFIX
from tests.unit.fakes import FakeClock, FakeQueue, fake_runtime

ROOT = Path(__file__).resolve().parents[2]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_duration_summary_untouched_for_retention_days_is_deleted_and_a_used_one_kept(clock: FakeClock) -> None:
    rt, f = fake_runtime(RETENTION_DAYS="30")
    assert rt.history is not None
    old, used = history_keys("default", "createSession", "/me/drive/items/A"), history_keys("default", "x", None)
    run(rt.history.record([*old, *used], 12.5, new_operation_id(clock.now), clock.now))
    clock.advance(20 * DAY)
    run(rt.history.record(used, 9.0, new_operation_id(clock.now), clock.now))  # a finish 20 days later
    clock.advance(11 * DAY)  # 31 days after the first, 11 after the second
    report = run(purge.run(rt, clock.now))
    assert {k for k in f.history.entities} == {*used}
    assert sum(s.durations for s in report.swept) == 2


def test_a_lane_untouched_for_retention_days_is_deleted(clock: FakeClock) -> None:
    rt, f = fake_runtime(RETENTION_DAYS="30", WORKBOOK_CONCURRENCY="1")
    stale, live = lane_key("/me/drive/items/A", "default"), lane_key("/me/drive/items/B", "default")
    for key in (stale, live):  # a holder whose process died, never released: its lease ran out long ago
        f.table.entities[(key, LANE_ROW_KEY)] = {"PartitionKey": key, "RowKey": LANE_ROW_KEY, "Holders": "[]"}
        f.table.touch(key, LANE_ROW_KEY, Holders='[["1234567890123abcdef0123", 1, 0.0]]', NextTicket=2)
    clock.advance(29 * DAY)
    f.table.touch(live, LANE_ROW_KEY, ThrottleUntil=0.0)  # written again a day before the cutoff
    clock.advance(2 * DAY)
    report = run(purge.run(rt, clock.now))
    assert f.table.row(stale, LANE_ROW_KEY) is None and f.table.row(live, LANE_ROW_KEY) is not None
    assert sum(s.lanes for s in report.swept) == 1


def test_an_orphaned_index_entry_goes_once_old_and_one_with_a_record_stays(clock: FakeClock) -> None:
    rt, f = fake_runtime(RETENTION_DAYS="1")
    orphan = Operation(
        id=new_operation_id(clock.now),
        status=NOT_STARTED,
        action="createSession",
        workbook="/me/drive/items/A",
        operation_url=None,
        created_at=iso(clock.now),
        updated_at=iso(clock.now),
        base_url="https://b/api",
        owner="default",
    )
    run(rt.store.write_index(orphan))  # a crash after the entry, before the record
    kept = run(rt.store.create(orphan.with_(id=new_operation_id(clock.now + 1))))
    clock.advance(2 * DAY)
    report = run(purge.run(rt, clock.now))
    assert f.table.row(index_partition("default"), orphan.id) is None
    assert f.table.row(index_partition("default"), kept.id) is not None
    assert sum(s.index_entries for s in report.swept) == 1


def test_a_poison_message_lives_seven_days_as_the_host_copies_it(clock: FakeClock) -> None:
    """The Functions host copies a failed message with `QueueClient.SendMessageAsync(body, cancellationToken)`,
    no time-to-live (azure-sdk-for-net: Microsoft.Azure.WebJobs.Extensions.Storage.Common, Shared/Queues/
    QueueProcessor.cs CopyMessageToPoisonQueueAsync -> StorageQueueExtensions.AddMessageAndCreateIfNotExistsAsync),
    so Put Message's default applies: 7 days. The fake host (fakes.deliver_one) copies it the same way."""
    poison = FakeQueue("x-poison")
    message = run(poison.send_message("body"))
    assert message.expires_at - clock.now == 7 * DAY
    assert (
        "| poison messages" in _lifetimes() and "7 days" in _lifetimes().split("| poison messages", 1)[1].split("\n")[0]
    )


def _lifetimes() -> str:
    """The lifetimes table of docs/design.md ("Data lifecycle")."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- lifetimes -->\n(.*?)<!-- end of lifetimes -->", text, re.S)
    assert found, "docs/design.md has no lifetimes table"
    return found.group(1)


def test_the_docs_give_every_kind_the_bridge_writes_a_lifetime() -> None:
    """Each kind of entity, blob and message, by the names the code gives it, has a row saying how long it lives
    and who deletes it."""
    table = _lifetimes()
    kinds = {
        "operation record": "`operation`",
        "idempotency key": f"`{IDEMPOTENCY_PREFIX}",
        "owner index entry": f"`{INDEX_PREFIX}",
        "lane": f"`{LANE_PREFIX}",
        "subscription": f"`{PARTITION_PREFIX}",
        "subscription delivery": f"`{DELIVERY_ROW_PREFIX}",
        "fan-out marker": f"`{FANOUT_ROW_KEY}`",
        "duration summary": "`DURATION_HISTORY_TABLE`",
        "result blob": "`RESULTS_CONTAINER`",
        "poll message": "`POLL_QUEUE`",
        "webhook message": "`WEBHOOK_QUEUE`",
        "poison messages": "`-poison`",
        "status-link key": f"`{LINK_KEY_CONTAINER}`",
    }
    rows = {
        line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "---" not in line
    }
    for kind, name in kinds.items():
        assert kind in rows, f"no lifetime row for {kind}"
        assert name in rows[kind], f"the {kind} row does not name {name}"
