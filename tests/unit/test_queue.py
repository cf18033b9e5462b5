"""Poll queue message format: shared.queue encode/decode."""

from __future__ import annotations

import json

import pytest

from shared.polling import PollState
from shared.queue import MESSAGE_VERSION, BadMessage, decode, encode


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
