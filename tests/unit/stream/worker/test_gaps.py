"""Offsets the consumer skipped, found as the agents see each partition's records
(stream/worker/gaps.py); reading them again is checked against a broker in
tests/integration/test_disk_full.py, where the skips were seen."""

from types import SimpleNamespace

from stream.worker.gaps import DeliveryGaps, in_offset_order


def records(*positions):
    return [SimpleNamespace(topic=t, partition=p, offset=o) for t, p, o in positions]


def test_a_partition_that_jumps_ahead_has_its_skipped_offsets_named():
    gaps = DeliveryGaps()
    assert gaps.missing(records(("b", 0, 626), ("b", 0, 627), ("b", 2, 687), ("b", 2, 688))) == []
    later = records(("b", 0, 628), ("b", 2, 690), ("b", 2, 691), ("r", 1, 5))
    assert gaps.missing(later) == [("b", 2, 689, 689)]  # a partition's first record names no gap


def test_records_seen_again_are_no_gap_and_an_assignment_starts_over():
    gaps = DeliveryGaps()
    gaps.missing(records(("b", 0, 10), ("b", 0, 11)))
    assert gaps.missing(records(("b", 0, 11), ("b", 0, 12))) == []  # a redelivery: the pipeline skips it
    gaps.reset()  # Faust seeks to the committed offsets
    assert gaps.missing(records(("b", 0, 3))) == []
    assert gaps.missing(records(("b", 0, 7))) == [("b", 0, 4, 6)]


def test_after_a_seek_a_partition_whose_first_record_is_further_on_has_a_gap():
    gaps = DeliveryGaps()
    gaps.reset()
    gaps.start_at({("r", 3): 10, ("b", 1): 0})  # committed offsets, or the log start
    assert gaps.missing(records(("r", 3, 38), ("b", 1, 0))) == [("r", 3, 10, 37)]


def test_records_that_arrive_before_the_seek_is_reported_are_expected_again_from_its_start():
    """Seen in the two-worker test: records fetched while the tables recovered were applied,
    undone by the recovery, then Faust skipped one of them after the seek."""
    gaps = DeliveryGaps()
    gaps.reset()
    assert gaps.missing(records(("b", 3, 20), ("b", 3, 30))) == [("b", 3, 21, 29)]
    gaps.start_at({("b", 3): 0})  # Faust reads the partition again from its start
    assert gaps.missing(records(*(("b", 3, o) for o in range(30)))) == []
    assert gaps.missing(records(("b", 3, 40))) == [("b", 3, 30, 39)]  # 30 again, with what was skipped after it


def test_records_read_again_take_their_place_in_their_partitions_offset_order():
    """A row takes an event at or below the offset it last applied for a copy, so a skipped
    offset read again must not come before an earlier record of its batch."""
    batch = records(("b", 3, 770), ("r", 1, 5), ("b", 3, 772))
    gaps = DeliveryGaps()
    gaps.start_at({("b", 3): 770, ("r", 1): 5})
    assert gaps.missing(batch) == [("b", 3, 771, 771)]
    merged = in_offset_order(records(("b", 3, 771)) + batch)
    assert [(r.topic, r.partition, r.offset) for r in merged] == [("b", 3, 770), ("b", 3, 771), ("b", 3, 772), ("r", 1, 5)]


def test_a_batch_holding_a_partitions_records_out_of_order_misses_nothing_it_holds():
    """Offsets 2, 0, 1 of one partition in one batch: 0 and 1 are there, not skipped."""
    gaps = DeliveryGaps()
    gaps.start_at({("b", 3): 0, ("b", 1): 0})
    assert gaps.missing(records(("b", 3, 2), ("b", 3, 0), ("b", 1, 4), ("b", 3, 1), ("b", 1, 1))) == [
        ("b", 1, 0, 0), ("b", 1, 2, 3)
    ]
    assert gaps.missing(records(("b", 3, 3), ("b", 1, 5))) == []
