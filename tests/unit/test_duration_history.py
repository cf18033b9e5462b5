"""The bounded per-kind duration summary: quantiles, bounds, encoding, keys and the ETag-merge decision."""

from __future__ import annotations

import random
import statistics
from collections import Counter

import pytest

from shared.schedule.history import (
    MAX_MERGE_ATTEMPTS,
    MAX_STRING_CHARS,
    SAMPLE_SIZE,
    DurationHistory,
    Entry,
    decode,
    encode,
    history_keys,
    merge_step,
    operation_tag,
    pick_history,
    retry_after_conflict,
    sample_quantile,
)


def history_of(durations: list[float]) -> DurationHistory:
    history = DurationHistory()
    for i, seconds in enumerate(durations):
        history = history.add(seconds, f"op-{i}")
    return history


# --- quantiles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_quantiles_are_the_exact_quantiles_of_the_sample(seed):
    rng = random.Random(seed)
    size = rng.randint(2, SAMPLE_SIZE)
    durations = [round(rng.lognormvariate(3.0, 1.0), 1) for _ in range(size)]
    history = history_of(durations)
    # statistics.quantiles(method="inclusive") cuts the sample at k/100 by linear interpolation (numpy-free).
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    for k, expected in enumerate(cuts, start=1):
        assert history.quantile(k / 100) == pytest.approx(expected, abs=1e-9)
    assert history.quantile(0.0) == min(durations)
    assert history.quantile(1.0) == max(durations)


def test_quantile_of_one_run_is_that_run_and_of_none_an_error():
    assert history_of([42.0]).quantile(0.13) == 42.0
    with pytest.raises(ValueError):
        DurationHistory().quantile(0.5)
    with pytest.raises(ValueError):
        sample_quantile([1.0], 1.5)


def test_quantiles_follow_the_recent_runs_only():
    old = [1000.0] * SAMPLE_SIZE
    recent = [10.0 + i for i in range(SAMPLE_SIZE)]
    history = history_of(old + recent)
    assert sorted(history.durations()) == recent
    assert history.quantile(0.5) == statistics.median(recent)


# --- bounds -----------------------------------------------------------------------------------------


def test_stays_bounded_under_a_hundred_thousand_updates():
    rng = random.Random(7)
    history = DurationHistory()
    longest = 0
    for i in range(100_000):
        history = history.add(rng.uniform(0, 10 * 86400), f"op-{i}")
        if i % 997 == 0:
            longest = max(longest, len(encode(history)["Recent"]))
    assert history.size == SAMPLE_SIZE
    assert history.count == 100_000
    encoded = encode(history)
    assert len(encoded["Recent"]) <= SAMPLE_SIZE * 18 and longest <= SAMPLE_SIZE * 18
    assert len(encoded["Recent"]) < MAX_STRING_CHARS
    assert len(encoded) == 3  # Version, Count, Recent: far from Table Storage's 255 properties


def test_durations_are_clamped_and_kept_to_a_tenth_of_a_second():
    history = history_of([-5.0, float("nan"), 12.345, 1e12])
    assert history.durations() == [0.0, 0.0, pytest.approx(12.3), 7 * 24 * 3600.0]


# --- encoding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_encode_decode_round_trip(seed):
    rng = random.Random(seed)
    history = history_of([rng.uniform(0, 5000) for _ in range(rng.randint(0, 2 * SAMPLE_SIZE))])
    assert decode(encode(history)) == history


@pytest.mark.parametrize(
    "properties",
    [
        None,
        {},
        {"Version": 2, "Count": 1, "Recent": "1.0:abcdef01"},
        {"Version": 1, "Count": 1, "Recent": "x:abcdef01"},
        {"Version": 1, "Count": 1, "Recent": "1.0:short"},
        {"Version": 1, "Count": 1, "Recent": "inf:abcdef01"},
        {"Version": 1, "Count": 1, "Recent": 5},
        {"Version": 1, "Count": 1, "Recent": "1.0:abcdef01," * 4000},
    ],
)
def test_an_unreadable_entity_is_an_empty_history(properties):
    assert decode(properties) == DurationHistory()


def test_decode_repairs_a_count_smaller_than_the_sample():
    decoded = decode({"Version": 1, "Count": -3, "Recent": "1.0:abcdef01,2.0:abcdef02"})
    assert decoded.count == 2 and decoded.durations() == [1.0, 2.0]


# --- keys -------------------------------------------------------------------------------------------


def test_keys_specific_first_then_owner_and_action_and_nothing_in_clear():
    owner, workbook = "user#1/with?odd\\chars", "/me/drive/items/01SECRETNAME"
    keys = history_keys(owner, "createSession", workbook)
    assert len(keys) == 2
    (pk1, rk1), (pk2, rk2) = keys
    assert pk1 == pk2 and rk2 == "createSession.*" and rk1.startswith("createSession.") and rk1 != rk2
    for key in (pk1, rk1, rk2):
        assert not set(key) & set("/\\#?") and all(ord(c) >= 32 for c in key) and len(key) < 1024
        assert "SECRETNAME" not in key and "user" not in key
    assert history_keys(owner, "createSession", None) == [keys[1]]
    assert history_keys("other", "createSession", workbook)[0][0] != pk1


def test_pick_history_prefers_the_workbooks_own_runs_once_there_are_enough():
    few, many = history_of([5.0, 6.0]), history_of([50.0] * 10)
    enough = history_of([5.0, 6.0, 7.0])
    assert pick_history(enough, many) is enough
    assert pick_history(few, many) is many
    assert pick_history(few, None) is few
    assert pick_history(None, many) is many
    assert pick_history(DurationHistory(), DurationHistory()) is None


# --- the ETag merge -----------------------------------------------------------------------------------


class TableModel:
    """One entity's worth of Table Storage with its concurrency rules. Table service error codes
    (learn.microsoft.com rest/api/storageservices/table-service-error-codes): "EntityAlreadyExists |
    Conflict (409) | The specified entity already exists." and "UpdateConditionNotSatisfied | Precondition
    Failed (412) | The update condition specified in the request was not satisfied." Every write changes
    the ETag."""

    def __init__(self) -> None:
        self.properties: dict | None = None
        self.etag: str | None = None
        self.version = 0

    def read(self) -> tuple[dict | None, str | None]:
        return (dict(self.properties) if self.properties is not None else None), self.etag

    def write(self, properties: dict, etag: str | None) -> int:
        if etag is None and self.properties is not None:
            return 409
        if etag is not None and etag != self.etag:
            return 412
        self.version += 1
        self.properties, self.etag = dict(properties), f'W/"{self.version}"'
        return 204


def finish(table: TableModel, seconds: float, op_id: str, interleave=None) -> bool:
    """The finish-time merge as the integration will run it: read, merge_step, conditional write, retry."""
    attempt = 0
    while True:
        attempt += 1
        current, etag = table.read()
        write = merge_step(current, etag, seconds, op_id)
        if write is None:
            return True
        if interleave is not None:
            interleave()  # someone else writes between our read and our write
        if table.write(write.properties, write.etag) == 204:
            return True
        if not retry_after_conflict(attempt):
            return False


def test_concurrent_first_finishes_both_land():
    table = TableModel()
    assert finish(table, 10.0, "a", interleave=lambda: finish(table, 20.0, "b"))  # b inserts first: a gets 409
    assert sorted(decode(table.properties).durations()) == [10.0, 20.0]


@pytest.mark.parametrize("seed", range(10))
def test_racing_finishes_give_the_same_sample_whichever_wins(seed):
    """Pairs of finishes race (both read the same ETag); in table a the first of each pair wins the write and
    the other retries, in table b the reverse. Both end with the same multiset of entries and count, even
    past the window size, because both orders evict the same older entries."""
    rng = random.Random(seed)
    finishes = [(rng.uniform(1, 600), f"op-{i}") for i in range(2 * SAMPLE_SIZE + 10)]
    pairs = [(finishes[i], finishes[i + 1]) for i in range(0, len(finishes) - 1, 2)]
    a, b = TableModel(), TableModel()
    for (s1, o1), (s2, o2) in pairs:
        assert finish(a, s1, o1, interleave=lambda s2=s2, o2=o2: finish(a, s2, o2))
        assert finish(b, s2, o2, interleave=lambda s1=s1, o1=o1: finish(b, s1, o1))
    merged_a, merged_b = decode(a.properties), decode(b.properties)
    assert merged_a.count == merged_b.count == len(finishes)
    assert merged_a.size == SAMPLE_SIZE
    assert Counter(merged_a.entries) == Counter(merged_b.entries)
    assert merged_a.entries != merged_b.entries  # the order differs; the quantiles cannot tell
    assert merged_a.quantile(0.9) == merged_b.quantile(0.9)


def test_merging_one_finish_twice_counts_it_once():
    table = TableModel()
    assert finish(table, 30.0, "op-1")
    version = table.version
    assert finish(table, 30.0, "op-1")  # a redelivered poll message finishes the same operation again
    assert table.version == version and decode(table.properties).count == 1
    assert merge_step(table.properties, table.etag, 99.0, "op-1") is None


def test_a_finish_that_keeps_losing_drops_only_its_own_point():
    table = TableModel()
    finish(table, 5.0, "first")
    others = iter(range(100))

    def someone_else() -> None:
        finish(table, 7.0, f"other-{next(others)}")

    assert not finish(table, 99.0, "loser", interleave=someone_else)
    kept = decode(table.properties)
    assert 99.0 not in kept.durations()
    assert kept.count == 1 + MAX_MERGE_ATTEMPTS and kept.durations() == [5.0] + [7.0] * MAX_MERGE_ATTEMPTS


def test_entries_carry_a_short_tag_of_the_operation_id():
    history = history_of([1.0])
    assert history.entries == (Entry(1.0, operation_tag("op-0")),)
    assert len(operation_tag("op-0")) == 8 and "op-0" not in encode(history)["Recent"]
