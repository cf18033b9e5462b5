"""The poll chain as a state machine: message copies x record generation x dequeue count.

The queue is modelled as the Functions host runs it (azure-webjobs-sdk QueueProcessor): a delivery that
returns is deleted, unless the delete itself fails (then the same message comes back with dequeue count + 1);
a delivery that raises is released and comes back with dequeue count + 1; a failed delivery whose dequeue
count reached maxDequeueCount goes to `<queue>-poison` instead. Every sequence of outcomes up to a length is
explored, and after every step there must be exactly one live message while the operation is active.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from shared.operations.chain import Verdict, is_last_delivery, judge

MAX_DEQUEUE = 5  # host.json extensions.queues.maxDequeueCount


def test_first_delivery_of_the_current_generation_is_live() -> None:
    assert judge(3, None, 3, "m1", 1) is Verdict.LIVE


def test_a_redelivery_claims() -> None:
    assert judge(3, None, 3, "m1", 2) is Verdict.CLAIM


def test_an_older_generation_is_stale_unless_it_is_the_claiming_message() -> None:
    assert judge(4, "m1", 3, "m2", 2) is Verdict.STALE
    assert judge(4, "m1", 3, "m1", 3) is Verdict.CLAIM  # the claimer failed again: it still owns the chain
    assert judge(4, None, 3, None, 3) is Verdict.STALE  # no message id (old host): the generation decides


def test_a_newer_generation_than_the_record_is_stale() -> None:
    assert judge(2, "m1", 3, "m1", 2) is Verdict.STALE


def test_last_delivery_is_the_one_at_max_dequeue_count() -> None:
    assert not is_last_delivery(4, 5)
    assert is_last_delivery(5, 5)


# ---------------------------------------------------------------- the model

Judge = Callable[[int, str | None, int, str | None, int], Verdict]


def old_judge(
    record_generation: int, chain_message: str | None, generation: int, message_id: str | None, dequeue_count: int
) -> Verdict:
    """h-core's rule (before issue 9): only the generation counts; a redelivery bumps it."""
    if generation != record_generation:
        return Verdict.STALE
    return Verdict.LIVE if dequeue_count <= 1 else Verdict.CLAIM


@dataclass
class Message:
    id: str
    generation: int
    dequeues: int = 0


@dataclass
class World:
    judge: Judge
    give_up_on_last: bool
    generation: int = 0
    chain_message: str | None = None
    terminal: bool = False
    queue: list[Message] = field(default_factory=lambda: [Message("m0", 0)])
    sent: int = 0

    def live(self) -> list[Message]:
        return [
            m
            for m in self.queue
            if not self.terminal
            and self.judge(self.generation, self.chain_message, m.generation, m.id, m.dequeues + 1) is not Verdict.STALE
        ]

    def deliver(self, outcome: str, which: str | None = None) -> None:
        """Deliver the oldest message; outcome: ok (sends a successor), done (finishes), fail-before (raises
        before sending), fail-after (sends a successor, then raises), lost-delete (ok, but the host's delete fails)."""
        if which is not None:  # deliver that message next (the queue's order is not guaranteed)
            self.queue.sort(key=lambda m: m.id != which)
        message = self.queue[0]
        message.dequeues += 1
        if self.terminal:
            self.queue.pop(0)
            return
        verdict = self.judge(self.generation, self.chain_message, message.generation, message.id, message.dequeues)
        if verdict is Verdict.STALE:
            self.queue.pop(0)
            return
        generation = self.generation
        if verdict is Verdict.CLAIM:
            self.generation += 1
            self.chain_message = message.id
            generation = self.generation
        failed = outcome in ("fail-before", "fail-after")
        if outcome in ("ok", "fail-after", "lost-delete"):
            self.sent += 1
            self.queue.append(Message(f"m{self.sent}", generation))
        if outcome == "done":
            self.terminal = True
        if failed:
            if is_last_delivery(message.dequeues, MAX_DEQUEUE):
                self.queue.pop(0)  # to <queue>-poison
                if self.give_up_on_last:
                    self.terminal = True  # poller._give_up: the operation ends failed, visibly
            else:
                self.queue.append(self.queue.pop(0))  # released; comes back later
        elif outcome == "lost-delete":
            self.queue.append(self.queue.pop(0))
        else:
            self.queue.pop(0)


OUTCOMES = ("ok", "done", "fail-before", "fail-after", "lost-delete")


def broken(world: World) -> bool:
    """The chain invariant: an active operation always has a live message (never stranded); a terminal one
    has none; and whenever no redelivery is pending (every queued message is fresh) exactly one is live. While
    redeliveries are pending there may be more (each copy and the successor it left): the next claim makes every
    other line stale on its next delivery, and the terminal write is ETag-guarded meanwhile."""
    live = world.live()
    if world.terminal:
        return bool(live)
    if not live:
        return True
    return all(m.dequeues == 0 for m in world.queue) and len(live) != 1


def explore(judge_rule: Judge, give_up_on_last: bool, depth: int) -> list[tuple[str, ...]]:
    """Every outcome sequence up to `depth` deliveries after which the chain invariant does not hold."""
    bad: list[tuple[str, ...]] = []
    for length in range(1, depth + 1):
        for sequence in itertools.product(OUTCOMES, repeat=length):
            world = World(judge_rule, give_up_on_last)
            for outcome in sequence:
                if not world.queue:
                    break
                world.deliver(outcome)
                if broken(world):
                    bad.append(sequence)
                    break
    return bad


def test_any_sequence_of_failures_leaves_exactly_one_live_chain() -> None:
    assert explore(judge, give_up_on_last=True, depth=7) == []


def test_the_old_rule_strands_after_two_consecutive_failures() -> None:
    bad = explore(old_judge, give_up_on_last=True, depth=4)
    assert ("fail-before", "fail-before") in bad  # issue 9, item 2


def test_without_giving_up_on_the_last_delivery_poison_strands_the_operation() -> None:
    bad = explore(judge, give_up_on_last=False, depth=MAX_DEQUEUE)
    assert ("fail-before",) * MAX_DEQUEUE in bad


@pytest.mark.parametrize("failures", range(1, MAX_DEQUEUE))
def test_the_claiming_message_survives_repeated_failures(failures: int) -> None:
    world = World(judge, give_up_on_last=True)
    for _ in range(failures):
        world.deliver("fail-after", "m0")  # each failed delivery leaves a successor behind
        assert "m0" in [m.id for m in world.live()]
    world.deliver("ok", "m0")  # m0 claims once more, queues its successor and is deleted
    assert [m.id for m in world.live()] == [f"m{failures + 1}"]  # every earlier successor is stale
    world.deliver("done", f"m{failures + 1}")
    assert world.terminal and world.live() == []
