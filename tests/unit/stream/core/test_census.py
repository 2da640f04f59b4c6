"""The census of a worker's users per partition: counted from rows, kept by moves, taken once."""

from __future__ import annotations

from stream.core.census import Census
from stream.core.user_state import UserState


def test_moves_count_only_in_counted_partitions_and_a_take_happens_once_per_change():
    census = Census(3, partition_of=lambda user_id: int(user_id[-1]))
    census.count(0, [0, 2, None, 2])
    census.move("u0", None, 1)
    census.move("u0", 2, 1)
    census.move("u1", None, 0)  # partition 1 is not counted (yet): a later count reads its rows
    taken = census.take()
    assert list(taken) == [0] and taken[0].tolist() == [1, 2, 1]
    assert census.take() == {}
    census.move("u0", 1, 1)  # staying put is no change
    assert census.take() == {}


def test_a_partition_handed_over_is_forgotten_and_recounted_from_its_rows():
    census = Census(2, partition_of=lambda user_id: 0)
    census.count(0, [0, 0])
    census.forget([0, 5])
    census.move("u", None, 1)
    assert census.counts == {}
    rows = [UserState("a"), UserState("b")]
    rows[0].segment = 1
    census.count(0, [UserState.segment_in(r.to_bytes()) for r in rows])
    assert census.take()[0].tolist() == [0, 1]


def test_segment_read_from_the_fixed_fields_of_a_row():
    state = UserState("u")
    assert UserState.segment_in(state.to_bytes()) is None
    state.segment = 3
    assert UserState.segment_in(state.to_bytes()) == 3
    assert UserState.segment_in(b"\x00junk") is None
