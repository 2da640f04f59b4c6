"""What a worker may trust of a table partition on disk (stream/core/recovery_plan.py)."""

import pytest

from stream.core.recovery_plan import LocalPartition, plan_recovery


def local(persisted=41, earliest=0, end=100, unflushed=False):
    return LocalPartition(persisted=persisted, earliest=earliest, end=end, unflushed=unflushed)


def test_rows_the_changelog_vouches_for_are_kept_and_only_what_follows_is_read():
    plan = plan_recovery(local(persisted=41, end=100))
    assert (plan.wipe, plan.read_after, plan.republish) == (False, 41, False)


def test_a_partition_left_mid_write_is_wiped_whatever_its_offset_says():
    for persisted in (None, 0, 41, 99):
        plan = plan_recovery(local(persisted=persisted, unflushed=True))
        assert (plan.wipe, plan.read_after, plan.republish) == (True, None, True)
        assert "without handing it over" in plan.reason


def test_nothing_recorded_reads_everything_with_nothing_to_wipe():
    plan = plan_recovery(local(persisted=None))
    assert (plan.wipe, plan.read_after) == (False, None)


@pytest.mark.parametrize(("persisted", "end"), [(100, 100), (250, 100), (0, 0)])
def test_an_offset_at_or_beyond_the_changelog_end_is_wiped(persisted, end):
    plan = plan_recovery(local(persisted=persisted, end=end))
    assert (plan.wipe, plan.read_after) == (True, None)
    assert "ahead of its changelog" in plan.reason


def test_a_changelog_that_no_longer_holds_what_follows_the_local_offset_is_read_whole():
    assert plan_recovery(local(persisted=10, earliest=12, end=100)).wipe
    kept = plan_recovery(local(persisted=11, earliest=12, end=100))  # the next record is the first held
    assert (kept.wipe, kept.read_after) == (False, 11)
