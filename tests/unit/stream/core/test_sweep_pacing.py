"""A live sweep's pauses: the share of time it takes is the configured one."""

import pytest

from stream.config import SettingError, load_settings
from stream.core.sweep import pause_after


@pytest.mark.parametrize("share", [0.1, 0.25, 0.5, 1.0])
def test_the_pause_leaves_the_rest_of_the_time_to_other_work(share):
    busy = 0.08
    assert busy / (busy + pause_after(busy, share)) == pytest.approx(share)


def test_a_share_of_one_never_pauses():
    assert pause_after(3.0, 1.0) == 0.0


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2", "nan"])
def test_a_share_outside_zero_to_one_is_refused(value):
    with pytest.raises(SettingError, match="SEGSTREAM_SWEEP_SHARE"):
        load_settings(env={"SEGSTREAM_SWEEP_SHARE": value})
