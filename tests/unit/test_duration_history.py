"""The bounded per-kind duration sample (shared/schedule/history.py): quantiles, bounds, the slot a finish takes,
the entity encoding (version 2 slots, and version 1 rings as they were written before) and the keys."""

from __future__ import annotations

import random
import statistics

import pytest

from shared.schedule.history import (
    SAMPLE_SIZE,
    DurationHistory,
    Entry,
    decode,
    encode,
    finish_properties,
    history_keys,
    operation_tag,
    sample_quantile,
    slot_name,
    slot_of,
)


def ids_in_distinct_slots(count: int, prefix: str = "op") -> list[str]:
    """Operation ids whose finishes take different slots (count <= SAMPLE_SIZE)."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        found.setdefault(slot_of(operation_tag(f"{prefix}-{n}")), f"{prefix}-{n}")
        n += 1
    return list(found.values())


def history_of(durations: list[float]) -> DurationHistory:
    """Each duration its own slot (ids chosen so), in this order."""
    history = DurationHistory()
    for i, (seconds, op) in enumerate(zip(durations, ids_in_distinct_slots(len(durations)), strict=True)):
        history = history.add(seconds, op, at=i)
    return history


def legacy(durations: list[float], count: int | None = None) -> dict[str, object]:
    """A version 1 entity as the store wrote it before slots: one ring, oldest first."""
    recent = ",".join(f"{d:.1f}:{operation_tag(f'old-{i}')}" for i, d in enumerate(durations))
    return {"Version": 1, "Count": len(durations) if count is None else count, "Recent": recent}


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


def test_a_finish_replaces_what_its_slot_held_so_the_sample_follows_the_recent_runs():
    old = DurationHistory()
    for i in range(5000):
        old = old.add(1000.0, f"old-{i}", at=i)
    assert old.size == SAMPLE_SIZE  # every slot filled
    history = old
    for i in range(2000):
        history = history.add(10.0, f"new-{i}", at=5000 + i)
    assert history.durations() == [10.0] * SAMPLE_SIZE  # 2000 finishes over 64 slots: none of the old is left
    assert [e.at for e in history.entries] == sorted(e.at for e in history.entries)  # in the order they finished


# --- bounds -----------------------------------------------------------------------------------------


def test_stays_bounded_under_a_hundred_thousand_updates():
    rng = random.Random(7)
    history = DurationHistory()
    for i in range(100_000):
        history = history.add(rng.uniform(0, 10 * 86400), f"op-{i}", at=1_767_225_600 + i)
    assert history.size == SAMPLE_SIZE
    assert history.count == 100_000
    encoded = encode(history)
    assert len(encoded) == 2 + SAMPLE_SIZE  # Version, Count and the slots: far from Table Storage's 255 properties
    assert all(len(str(v)) <= 30 for k, v in encoded.items() if k.startswith("S"))


def test_which_finishes_stay_does_not_depend_on_their_durations():
    """The sampling rule is the operation id's hash: two runs of the same finishes with the durations swapped
    around keep the same operations."""
    rng = random.Random(8)
    ops = [f"op-{i}" for i in range(500)]
    a, b = DurationHistory(), DurationHistory()
    for i, op in enumerate(ops):
        a = a.add(rng.uniform(1, 10), op, at=i)
        b = b.add(rng.uniform(100, 1000), op, at=i)
    assert [e.tag for e in a.entries] == [e.tag for e in b.entries]


def test_durations_are_clamped_and_kept_to_a_tenth_of_a_second():
    history = history_of([-5.0, float("nan"), 12.345, 1e12])
    assert history.durations() == [0.0, 0.0, pytest.approx(12.3), 7 * 24 * 3600.0]


# --- encoding ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_encode_decode_round_trip(seed):
    rng = random.Random(seed)
    history = DurationHistory()
    for i in range(rng.randint(0, 3 * SAMPLE_SIZE)):
        history = history.add(rng.uniform(0, 5000), f"op-{seed}-{i}", at=1_767_225_600 + i)
    assert decode(encode(history)) == history


def test_a_finish_writes_the_version_and_its_own_slot_only():
    properties = finish_properties(12.34, "op-1", 1_767_225_600.7)
    slot = slot_of(operation_tag("op-1"))
    assert properties == {"Version": 2, slot_name(slot): f"12.3:{operation_tag('op-1')}:1767225600"}
    assert "op-1" not in str(properties)


def test_a_version_1_entity_is_still_read():
    old = legacy([10.0, 20.0, 30.0], count=250)
    history = decode(old)
    assert history.durations() == [10.0, 20.0, 30.0] and history.count == 250
    assert all(e.slot is None and e.at == 0 for e in history.entries)


def test_slots_written_into_a_version_1_entity_come_after_its_ring_and_push_it_out():
    """The first finish after the upgrade merges its slot into the old entity (Version becomes 2, the ring stays):
    the old runs count as older than any new one, and leave the sample as the slots fill."""
    entity: dict[str, object] = legacy([100.0 + i for i in range(SAMPLE_SIZE)])
    for i, op in enumerate(ids_in_distinct_slots(10)):
        entity.update(finish_properties(5.0, op, 1_767_225_600 + i))
    history = decode(entity)
    assert history.size == SAMPLE_SIZE
    assert history.durations() == [100.0 + i for i in range(10, SAMPLE_SIZE)] + [5.0] * 10
    for i, op in enumerate(ids_in_distinct_slots(SAMPLE_SIZE)):
        entity.update(finish_properties(7.0, op, 1_767_225_700 + i))
    assert decode(entity).durations() == [7.0] * SAMPLE_SIZE


@pytest.mark.parametrize(
    "properties",
    [
        None,
        {},
        {"Version": 3, "Count": 1, "Recent": "1.0:abcdef01"},  # a newer format: not ours to read
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


def test_a_damaged_slot_is_skipped_and_the_others_read():
    good = finish_properties(4.0, "op-1", 1_767_225_600)
    bad_slot = slot_name((slot_of(operation_tag("op-1")) + 1) % SAMPLE_SIZE)
    for damage in ("x:abcdef01:1", "4.0:short:1", "4.0:abcdef01", "inf:abcdef01:1", "4.0:abcdef01:-5", 7):
        assert decode({**good, bad_slot: damage}).durations() == [4.0]


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
    assert history_keys(owner, None, None) == [(pk1, "tracked.*")]  # a tracked operation without an action


def test_entries_carry_a_short_tag_of_the_operation_id_and_one_finish_counts_once():
    history = DurationHistory().add(1.0, "op-0", at=5)
    tag = operation_tag("op-0")
    assert history.entries == (Entry(1.0, tag, 5, slot_of(tag)),)
    assert len(tag) == 8 and "op-0" not in str(encode(history))
    assert history.add(99.0, "op-0", at=6) is history  # a redelivered finish
