"""Kill the function app with many operations in flight; after a restart each finishes exactly once."""

from __future__ import annotations

from collections import Counter

from .harness import BridgeFactory, Emulator, WebhookReceiver, new_item, restart, wait_for

OPERATIONS = 32
RUNNING_POLLS = 4


def test_kill_and_restart_mid_flight(make_bridge: BridgeFactory, emulator: Emulator, receiver: WebhookReceiver) -> None:
    lease = ["--lease-seconds", "4"]
    bridge = make_bridge("crash", extra_args=lease, POLL_MAX_DELAY_SECONDS="1")
    items, hooks, ids = [], [], []
    for _ in range(OPERATIONS):
        item = new_item()
        # A slow Graph keeps invocations mid-request, so the kill interrupts real work.
        emulator.scenario(item, runningPolls=RUNNING_POLLS, operationLatencySeconds=0.5)
        hook = receiver.new_url()
        response = bridge.start({"workbook": f"/me/drive/items/{item}", "action": "createSession", "callbackUrl": hook})
        assert response.status_code == 201, response.text
        items.append(item)
        hooks.append(hook)
        ids.append(response.json()["id"])

    def polls(item: str) -> int:
        return len(emulator.requests(item=item, kind="operation"))

    # Kill once most operations are mid-chain: polled at least once, none finished yet.
    wait_for(lambda: sum(1 for item in items if polls(item) >= 1) >= OPERATIONS // 2, 60, "operations in flight")
    bridge.service.kill()
    finished_before = sum(1 for item in items if polls(item) > RUNNING_POLLS)
    restart(bridge, extra_args=lease)

    records = [bridge.wait_done(op_id, timeout=120) for op_id in ids]
    assert [r["status"] for r in records] == ["succeeded"] * OPERATIONS

    for item, hook, record in zip(items, hooks, records, strict=True):
        deliveries = receiver.wait(hook)
        event_ids = Counter(d.headers["webhook-id"] for d in deliveries)
        assert len(event_ids) == 1, f"{record['id']} sent {len(event_ids)} different events"
        # One poll per Graph state, plus at most one repeat of a poll cut short by the kill.
        assert RUNNING_POLLS + 1 <= polls(item) <= RUNNING_POLLS + 2, (record["id"], polls(item))
        assert record["pollCount"] <= RUNNING_POLLS + 2
    assert finished_before < OPERATIONS  # the kill really happened mid-flight
    # Messages cut short by the kill came back as redeliveries and claimed their chains.
    assert "chain claimed as generation" in bridge.service.tail(5000)
