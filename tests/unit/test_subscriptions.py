"""Subscriptions' pure parts: requests, matching, ids and keys, entities, and the at-least-once rules."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from shared.api.problems import Problem
from shared.delivery.claims import Drop, Go, Wait, attempt_verdict, claim_lease
from shared.delivery.fanout_rules import FANOUT_MAX_TRIES, fanout_verdict, needs_first_attempt, subscription_ledger
from shared.delivery.policy import Retry, RetryPolicy, decide, jitter
from shared.operations.record import Operation, iso
from shared.storage.messages import (
    BadMessage,
    FanoutTask,
    SubscriptionAttempt,
    decode_delivery,
    decode_fanout,
    decode_subscription_attempt,
    encode_fanout,
    encode_subscription_attempt,
    message_kind,
)
from shared.subscriptions.record import (
    DEFAULT_STATUSES,
    DELIVERED,
    PENDING,
    UNSUBSCRIBED,
    Subscription,
    SubscriptionDelivery,
    delivery_from_entity,
    delivery_id,
    delivery_to_entity,
    from_entity,
    owner_key,
    partition_for_owner,
    partition_of,
    to_entity,
)
from shared.subscriptions.rules import (
    is_subscription_id,
    matches,
    new_subscription_id,
    parse_subscription_request,
    to_json,
)

OP_ID = "8285435199999a1b2c3d4e5"


def parse(payload: Any, webhooks: bool = True) -> Any:
    return parse_subscription_request(payload, allow_private_callbacks=False, webhooks_configured=webhooks)


def field_of(payload: Any, webhooks: bool = True) -> str:
    with pytest.raises(Problem) as caught:
        parse(payload, webhooks)
    assert caught.value.status == 400
    return caught.value.errors[0].field


def operation(status: str = "succeeded", action: str | None = "createSession", event: str = "evt-1") -> Operation:
    return Operation(
        id=OP_ID,
        status=status,
        action=action,
        workbook="/me/drive/items/1",
        operation_url=None,
        created_at="2024-05-01T12:00:00.000Z",
        updated_at="2024-05-01T12:00:00.000Z",
        base_url="https://b.example/api",
        event_id=event,
        owner="t/ada",
        fanout_state="pending",
    )


def subscription(**changes: Any) -> Subscription:
    values: dict[str, Any] = {
        "id": new_subscription_id("t/ada"),
        "owner": "t/ada",
        "callback_sealed": "s1.x",
        "actions": (),
        "statuses": DEFAULT_STATUSES,
        "callback_format": "binary",
        "created_at": "2024-05-01T12:00:00.000Z",
        "base_url": "https://b.example/api",
    }
    values.update(changes)
    return Subscription(**values)


# --- requests ---------------------------------------------------------------------------------


def test_minimal_request_gets_the_defaults():
    request = parse({"callbackUrl": "https://flow.example.com/cb?sig=abc"})
    assert request.callback_url == "https://flow.example.com/cb?sig=abc"
    assert request.actions == () and request.statuses == ("succeeded", "failed", "timedOut")
    assert request.callback_format == "binary"


def test_filters_are_kept_in_canonical_order_without_repeats():
    request = parse(
        {
            "callbackUrl": "https://f.example.com/",
            "actions": ["deleteTableRow", "createSession", "createSession"],
            "statuses": ["canceled", "succeeded"],
            "callbackFormat": "structured",
        }
    )
    assert request.actions == ("createSession", "deleteTableRow")
    assert request.statuses == ("succeeded", "canceled") and request.callback_format == "structured"


def test_empty_filters_mean_the_defaults():
    request = parse({"callbackUrl": "https://f.example.com/", "actions": [], "statuses": []})
    assert request.actions == () and request.statuses == DEFAULT_STATUSES


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], "body"),
        ({}, "callbackUrl"),
        ({"callbackUrl": None}, "callbackUrl"),
        ({"callbackUrl": "http://f.example.com/"}, "callbackUrl"),  # https only
        ({"callbackUrl": "https://127.0.0.1/"}, "callbackUrl"),  # the operation callbacks' SSRF rules
        ({"callbackUrl": "https://f.example.com/", "actions": ["run"]}, "actions"),
        ({"callbackUrl": "https://f.example.com/", "actions": "createSession"}, "actions"),
        ({"callbackUrl": "https://f.example.com/", "statuses": ["running"]}, "statuses"),
        ({"callbackUrl": "https://f.example.com/", "callbackFormat": "xml"}, "callbackFormat"),
        ({"callbackUrl": "https://f.example.com/", "workbook": "/me/drive/items/1"}, "workbook"),
    ],
)
def test_bad_requests_name_the_field(payload, field):
    assert field_of(payload) == field


def test_callbacks_need_webhooks_configured():
    assert field_of({"callbackUrl": "https://f.example.com/"}, webhooks=False) == "callbackUrl"


# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "fires"), [("succeeded", True), ("failed", True), ("timedOut", True), ("canceled", False)]
)
def test_default_statuses_leave_out_a_callers_cancel(status, fires):
    assert matches(subscription(), operation(status)) is fires


def test_canceled_fires_only_when_asked_for():
    assert matches(subscription(statuses=("canceled",)), operation("canceled"))
    assert not matches(subscription(statuses=("canceled",)), operation("succeeded"))


def test_action_filter():
    only_rows = subscription(actions=("createTableRow", "deleteTableRow"))
    assert matches(only_rows, operation(action="deleteTableRow"))
    assert not matches(only_rows, operation(action="createSession"))
    assert not matches(only_rows, operation(action=None))  # a tracked operation of unknown action
    assert matches(subscription(), operation(action=None))


# --- ids and keys -----------------------------------------------------------------------------


def test_subscription_ids_name_their_owners_partition():
    sub_id = new_subscription_id("tenant/ada")
    assert is_subscription_id(sub_id) and len(sub_id) == 48
    assert partition_of(sub_id) == partition_for_owner("tenant/ada") == "subs-" + owner_key("tenant/ada")
    assert partition_of(new_subscription_id("tenant/bob")) != partition_of(sub_id)
    assert new_subscription_id("tenant/ada") != sub_id


@pytest.mark.parametrize("value", ["", "x" * 48, "A" * 48, "0" * 47, "0" * 49, "../" + "0" * 45])
def test_malformed_subscription_ids(value):
    assert not is_subscription_id(value)


def test_delivery_id_is_deterministic_per_event_and_subscription():
    assert delivery_id("evt-1", "s1") == delivery_id("evt-1", "s1")
    assert len({delivery_id("evt-1", "s1"), delivery_id("evt-1", "s2"), delivery_id("evt-2", "s1")}) == 3


# --- entities and JSON ------------------------------------------------------------------------


def test_subscription_entity_round_trip_and_public_form():
    sub = subscription(actions=("createTableRow",), statuses=("failed", "canceled"), callback_format="structured")
    entity = to_entity(sub)
    assert entity["PartitionKey"] == partition_of(sub.id) and entity["RowKey"] == "sub-" + sub.id
    assert from_entity(entity) == sub
    body = to_json(sub)
    assert body["links"]["self"] == f"https://b.example/api/subscriptions/{sub.id}"
    assert "s1.x" not in json.dumps(body) and "callback" not in json.dumps(body).lower().replace("callbackformat", "")


def test_delivery_entity_round_trip():
    d = SubscriptionDelivery(
        OP_ID,
        "s" * 48,
        "evt-1",
        since=1714564800.5,
        attempts=2,
        last_status=503,
        last_error="receiver answered 503",
        last_attempt_at="2024-05-01T12:00:00.000Z",
        next_attempt_at=1714564900.0,
        claimed_attempt=3,
    )
    entity = delivery_to_entity(d)
    assert entity["PartitionKey"] == OP_ID and entity["RowKey"] == "subdelivery-" + "s" * 48
    assert delivery_from_entity(entity) == d
    fresh = SubscriptionDelivery(OP_ID, "s" * 48, "evt-1", since=1.0)
    assert delivery_from_entity(delivery_to_entity(fresh)) == fresh


def test_a_delivery_entity_written_before_claims_had_a_field_still_decodes():
    """Exactly the properties the version before wrote (its attempt counter counted claimed attempts)."""
    old = {
        "PartitionKey": OP_ID,
        "RowKey": "subdelivery-" + "s" * 48,
        "EventId": "evt-1",
        "Since": 1714564800.5,
        "State": "pending",
        "Attempts": 1,
        "LastStatus": "",
        "LastError": "",
        "LastAttemptAt": "2024-05-01T12:00:00.000Z",
        "NextAttemptAt": "",
    }
    d = delivery_from_entity(old)
    assert (d.attempts, d.claimed_attempt, d.state, d.last_status) == (1, None, PENDING, None)
    ledger = subscription_ledger(d)
    assert ledger.attempts == 1 and ledger.claimed_attempt is None  # its queued attempt 2 may run


# --- queue messages ---------------------------------------------------------------------------


def test_messages_round_trip_and_are_told_apart():
    fan = FanoutTask(OP_ID, "evt-1", 3)
    attempt = SubscriptionAttempt(OP_ID, "s" * 48, "evt-1", 2)
    assert decode_fanout(encode_fanout(fan)) == fan
    assert decode_subscription_attempt(encode_subscription_attempt(attempt)) == attempt
    assert message_kind(encode_fanout(fan)) == "fanout"
    assert message_kind(encode_subscription_attempt(attempt)) == "subscription"
    assert message_kind("not json") is None
    with pytest.raises(BadMessage):
        decode_delivery(encode_fanout(fan))  # never mistaken for an operation webhook attempt
    with pytest.raises(BadMessage):
        decode_subscription_attempt(
            encode_subscription_attempt(SubscriptionAttempt(OP_ID, "s", "e", 1)).replace('"attempt":1', '"attempt":0')
        )


# --- the at-least-once rules ------------------------------------------------------------------


def test_fanout_runs_once_per_current_terminal_event():
    task = FanoutTask(OP_ID, "evt-1")
    assert fanout_verdict(operation(), task, done=False) == Go()
    assert isinstance(fanout_verdict(operation(), task, done=True), Drop)  # a duplicate after it ran
    assert isinstance(fanout_verdict(operation(event="evt-2"), task, done=False), Drop)


def test_fanout_waits_for_the_terminal_write_it_was_queued_before():
    task = FanoutTask(OP_ID, "evt-1")
    assert isinstance(fanout_verdict(operation("running"), task, done=False), Wait)
    assert isinstance(fanout_verdict(None, task, done=False), Wait)
    assert isinstance(fanout_verdict(None, FanoutTask(OP_ID, "evt-1", FANOUT_MAX_TRIES), done=False), Drop)


def test_only_an_unclaimed_delivery_gets_its_first_attempt_queued():
    fresh = SubscriptionDelivery(OP_ID, "s" * 48, "evt-1", since=0.0)
    assert needs_first_attempt(fresh)
    assert not needs_first_attempt(fresh.with_(attempts=1))
    assert not needs_first_attempt(fresh.with_(state=DELIVERED))
    assert not needs_first_attempt(fresh.with_(state=UNSUBSCRIBED))


LEASE = claim_lease(15.0)


def verdict(d: SubscriptionDelivery | None, task: SubscriptionAttempt, now: float) -> Any:
    """The one webhook attempt protocol's verdict (shared/delivery/claims.py) over a subscription delivery."""
    return attempt_verdict(subscription_ledger(d) if d else None, task.event_id, task.attempt, now, LEASE)


def test_an_attempt_runs_only_when_the_delivery_expects_it():
    d = SubscriptionDelivery(OP_ID, "s" * 48, "evt-1", since=0.0)
    task = SubscriptionAttempt(OP_ID, "s" * 48, "evt-1", 1)
    assert verdict(d, task, 10.0) == Go()
    assert isinstance(verdict(d.with_(attempts=1), task, 10.0), Drop)  # a copy of an attempt already recorded
    assert isinstance(verdict(d.with_(state=DELIVERED, attempts=1), task, 10.0), Drop)
    assert isinstance(
        verdict(d.with_(state=PENDING, attempts=1), SubscriptionAttempt(OP_ID, "s" * 48, "evt-1", 3), 10.0),
        Drop,
    )  # from the future
    assert isinstance(verdict(None, task, 10.0), Drop)
    assert isinstance(verdict(d, SubscriptionAttempt(OP_ID, "s" * 48, "evt-2", 1), 10.0), Drop)


def test_a_copy_of_a_claimed_attempt_waits_for_the_claims_lease():
    d = SubscriptionDelivery(OP_ID, "s" * 48, "evt-1", since=0.0, claimed_attempt=1, last_attempt_at=iso(10.0))
    task = SubscriptionAttempt(OP_ID, "s" * 48, "evt-1", 1)
    held = verdict(d, task, 12.0)
    assert isinstance(held, Wait) and held.delay == math.ceil(LEASE - 2) + 1
    assert verdict(d, task, 10.0 + LEASE + 0.001) == Go()  # the holder died: taken over


def test_an_early_message_waits_for_retry_after():
    d = SubscriptionDelivery(OP_ID, "s" * 48, "evt-1", since=0.0, attempts=1, next_attempt_at=100.0)
    task = SubscriptionAttempt(OP_ID, "s" * 48, "evt-1", 2)
    assert verdict(d, task, 40.0) == Wait(60, "the retry is not due yet (Retry-After)")
    assert verdict(d, task, 99.5) == Go()


@pytest.mark.parametrize("attempt", [1, 2, 3, 5])
def test_every_delivery_of_one_attempt_plans_the_same_retry(attempt):
    """The jitter is seeded by the webhook-id and the attempt: a copy or a take-over plans what the first did."""
    d = SubscriptionDelivery(OP_ID, "s" * 48, "evt-1", since=0.0)

    def planned(webhook_id: str) -> int:
        decided = decide(
            status=500,
            retry_after=None,
            error=None,
            refused=False,
            attempt=attempt,
            elapsed=0,
            policy=RetryPolicy(),
            rng=jitter(webhook_id, attempt),
        )
        assert isinstance(decided, Retry)
        return decided.delay

    assert planned(d.webhook_id) == planned(d.webhook_id)
    others = {planned(delivery_id(f"evt-{n}", "s" * 48)) for n in range(20)}
    assert len(others) > 1  # other webhooks spread out


@pytest.mark.parametrize("name", ["actions", "statuses", "callbackFormat"])
def test_null_filters_are_refused_as_the_schema_says(name):
    # schemathesis found `"statuses": null` accepted on POST /subscriptions (ST201)
    with pytest.raises(Problem) as caught:
        parse({"callbackUrl": "https://hooks.example.com/cb", name: None})
    assert caught.value.body()["field"] == name
