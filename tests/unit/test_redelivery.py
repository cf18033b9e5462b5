"""When a webhook attempt may be sent and a redelivery may start: shared.delivery.claims (pure)."""

from __future__ import annotations

import pytest

from shared.delivery.claims import STALLED_CHAIN_SECONDS, claim_held, claim_lease, operation_ledger, redelivery_wait
from shared.operations.record import WEBHOOK_DELIVERED, WEBHOOK_FAILED, WEBHOOK_PENDING, Operation, iso

T0 = 1_764_000_000.0
LEASE = claim_lease(15.0)


def op(**changes: object) -> Operation:
    base = Operation(
        id="8285435199999a1b2c3d4e5",
        status="succeeded",
        action="createSession",
        workbook="/me/drive/items/A",
        operation_url=None,
        created_at=iso(T0),
        updated_at=iso(T0),
        base_url="https://b/api",
        completed_at=iso(T0),
        event_id="e",
        callback_sealed="s",
    )
    return base.with_(**changes)


def test_the_lease_covers_the_post_timeout():
    assert LEASE > 15.0


def test_an_unclaimed_attempt_is_free():
    assert claim_held(operation_ledger(op(webhook_state=WEBHOOK_PENDING)), 1, T0, LEASE) is None


def test_a_claimed_attempt_holds_for_the_lease_then_can_be_taken_over():
    claimed = operation_ledger(
        op(webhook_state=WEBHOOK_PENDING, webhook_claimed_attempt=1, webhook_last_attempt_at=iso(T0))
    )
    assert claim_held(claimed, 1, T0 + 1, LEASE) == pytest.approx(LEASE - 1)
    assert claim_held(claimed, 1, T0 + LEASE + 0.001, LEASE) is None  # the holder died: take over
    assert claim_held(claimed, 2, T0 + 1, LEASE) is None  # a claim is for one attempt only


@pytest.mark.parametrize("state", [WEBHOOK_DELIVERED, WEBHOOK_FAILED])
def test_a_finished_webhook_may_be_redelivered(state):
    assert redelivery_wait(op(webhook_state=state), T0 + 1, LEASE) is None


def test_a_pending_webhook_is_not_redelivered_while_its_chain_lives():
    pending = op(
        webhook_state=WEBHOOK_PENDING,
        webhook_attempts=2,
        webhook_last_attempt_at=iso(T0 + 10),
        webhook_next_attempt_at=iso(T0 + 70),
    )
    assert redelivery_wait(pending, T0 + 11, LEASE) == pytest.approx(70 + LEASE - 11, abs=1)
    assert redelivery_wait(pending, T0 + 70 + LEASE + 1, LEASE) == 1  # late, but not yet taken as lost
    assert redelivery_wait(pending, T0 + 70 + LEASE + STALLED_CHAIN_SECONDS, LEASE) is None  # lost: repair


def test_a_first_attempt_not_yet_made_counts_from_completion():
    pending = op(webhook_state=WEBHOOK_PENDING)
    assert redelivery_wait(pending, T0 + 1, LEASE) is not None
    assert redelivery_wait(pending, T0 + LEASE + STALLED_CHAIN_SECONDS, LEASE) is None
