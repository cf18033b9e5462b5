"""Poll queue message format: shared.storage.queues encode/decode."""

from __future__ import annotations

import asyncio
import json

import pytest

from shared.delivery import operation_webhooks as deliverer
from shared.graph.lro import PollState
from shared.operations import poll_step as poller
from shared.storage.messages import (
    MESSAGE_VERSION,
    BadMessage,
    DeliveryTask,
    decode,
    decode_delivery,
    encode,
    encode_delivery,
)


@pytest.mark.parametrize(
    "state",
    [
        PollState("8285435199999a1b2c3d4e5", 0),
        PollState("8285435199999a1b2c3d4e5", 3, polls=17, transient_failures=2),
        PollState("x", 10**6, polls=10**6, transient_failures=0),
        PollState("x", 1, polls=4, transient_failures=2, last_transient="Graph answered 503"),
    ],
)
def test_round_trip(state):
    text = encode(state)
    assert json.loads(text)["v"] == MESSAGE_VERSION
    assert decode(text) == state


def test_missing_counters_default_to_zero():
    assert decode('{"v":1,"id":"a","gen":2}') == PollState("a", 2, 0, 0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '"string"',
        "null",
        '{"id":"a","gen":0}',
        '{"v":2,"id":"a","gen":0}',
        '{"v":"1","id":"a","gen":0}',
        '{"v":1,"gen":0}',
        '{"v":1,"id":"a"}',
        '{"v":1,"id":"a","gen":"x"}',
        '{"v":1,"id":"a","gen":null}',
        '{"v":1,"id":"a","gen":0,"polls":"many"}',
        '{"v":1,"id":"a","gen":-1}',
        '{"v":1,"id":"a","gen":0,"polls":-1}',
        '{"v":1,"id":"a","gen":0,"transient":-3}',
        '{"v":1,"id":"a","gen":0,"transient":1,"why":7}',
    ],
)
def test_decode_rejects(text):
    with pytest.raises(BadMessage):
        decode(text)


def test_the_transient_reason_is_bounded_in_a_message():
    state = decode('{"v":1,"id":"a","gen":0,"transient":1,"why":"%s"}' % ("x" * 5000))
    assert len(state.last_transient) == 200


# Issue 9 (hostile messages): exact JSON types, counters that fit Table Storage's Edm.Int32, no exception
# but BadMessage whatever the text. Storage Queues deliver any text a holder of the account key sends.
@pytest.mark.parametrize(
    "text",
    [
        '{"v":true,"id":"a","gen":0}',  # True == 1 in Python
        '{"v":1.0,"id":"a","gen":0}',
        '{"v":1,"id":"a","gen":1.0}',  # a float generation
        '{"v":1,"id":"a","gen":1.5}',
        '{"v":1,"id":"a","gen":true}',
        '{"v":1,"id":"a","gen":"3"}',  # a string for a number
        '{"v":1,"id":"a","gen":0,"polls":"3"}',
        '{"v":1,"id":"a","gen":0,"transient":false}',
        '{"v":1,"id":"a","gen":1e400}',  # int(inf): OverflowError in the old decoder
        '{"v":1,"id":"a","gen":0,"polls":1e400}',
        '{"v":1,"id":"a","gen":NaN}',
        '{"v":1,"id":"a","gen":0,"polls":1180591620717411303424}',  # 2**70: the terminal write failed
        '{"v":1,"id":"a","gen":2147483648}',  # 2**31
        '{"v":1,"id":"a","gen":0,"transient":2147483648}',
        '{"v":1,"id":"a","gen":' + "9" * 5000 + "}",  # over CPython's int digit limit: ValueError
        '{"v":1,"id":"a","gen":0,"x":' + "[" * 5000 + "]" * 5000 + "}",  # RecursionError
        '{"v":1,"id":"a","id":"b","gen":0}',  # which id?
        '{"v":1,"id":"","gen":0}',
        '{"v":1,"id":"' + "a" * 200 + '","gen":0}',
    ],
    ids=lambda text: text[:60],
)
def test_decode_rejects_hostile_messages(text):  # ids: the message's first 60 characters
    with pytest.raises(BadMessage):
        decode(text)


def test_counters_up_to_int32_are_accepted():
    assert decode('{"v":1,"id":"a","gen":2147483647,"polls":2147483647}') == PollState("a", 2**31 - 1, 2**31 - 1)


GOOD_DELIVERY = {"v": 1, "kind": "webhook", "id": "a", "event": "e", "attempt": 1, "since": 1764000000.5}


def test_delivery_round_trip():
    task = DeliveryTask("8285435199999a1b2c3d4e5", "6f1c", 3, 1764000000.25)
    assert decode_delivery(encode_delivery(task)) == task
    assert decode_delivery(json.dumps({**GOOD_DELIVERY, "since": 1764000000})).since == 1764000000.0


@pytest.mark.parametrize(
    "changes",
    [
        {"v": True},
        {"kind": "poll"},
        {"attempt": True},
        {"attempt": 1.0},
        {"attempt": "2"},
        {"attempt": 0},
        {"attempt": 2**31},
        {"since": True},
        {"since": "1764000000"},
        {"since": -1},
        {"since": 1e300},
        {"event": 7},
        {"id": None},
    ],
    ids=str,
)
def test_decode_delivery_rejects(changes):
    with pytest.raises(BadMessage):
        decode_delivery(json.dumps({**GOOD_DELIVERY, **changes}))


@pytest.mark.parametrize(
    "text",
    [
        '{"v":1,"kind":"webhook","id":"a","event":"e","attempt":1e400,"since":1}',
        '{"v":1,"kind":"webhook","id":"a","event":"e","attempt":1,"since":Infinity}',
    ],
)
def test_decode_delivery_rejects_non_finite_numbers(text):
    with pytest.raises(BadMessage):
        decode_delivery(text)


class NoRuntime:
    """Touching the runtime at all would mean the message got past decoding."""

    def __getattr__(self, name):
        raise AssertionError(f"a bad message reached rt.{name}")


@pytest.mark.parametrize(
    "text",
    [
        '{"v":1,"id":"a","gen":1e400}',
        '{"v":1,"id":"a","gen":' + "9" * 5000 + "}",
        '{"v":1,"id":"a","gen":0,"x":' + "[" * 5000 + "]" * 5000 + "}",
    ],
    ids=["inf generation", "5000-digit generation", "nested 5000 deep"],
)
def test_a_bad_poll_message_is_dropped_on_first_sight(text, caplog):
    """Dropped (the function returns, the host deletes it) rather than raised (retried 5 times, poisoned)."""
    asyncio.run(poller.handle_message(NoRuntime(), text, 1))  # type: ignore[arg-type]
    assert "dropping unreadable poll message" in caplog.text


def test_a_bad_delivery_message_is_dropped_on_first_sight(caplog):
    text = '{"v":1,"kind":"webhook","id":"a","event":"e","attempt":1e400,"since":1}'
    asyncio.run(deliverer.handle_message(NoRuntime(), text))  # type: ignore[arg-type]
    assert "dropping unreadable webhook message" in caplog.text


def test_ping_reads_the_queue_metadata_once():
    # /api/health asks the queue adapter (PollQueue.ping) instead of reaching into its client.
    from shared.storage.queues import PollQueue

    class Client:  # azure.storage.queue.aio.QueueClient.get_queue_properties: Get Queue Metadata
        calls = 0

        async def get_queue_properties(self):
            Client.calls += 1
            return {}

    asyncio.run(PollQueue(Client()).ping())
    assert Client.calls == 1
