"""HTTP query parameters: a bad one is a message for a 400, never an exception for a 500."""

import pytest

from stream.worker.web import whole_number


def test_a_whole_number_in_range_is_taken_and_an_absent_one_is_the_default():
    assert whole_number({"top": "25"}, "top", 10, 1, 1000) == 25
    assert whole_number({}, "top", 10, 1, 1000) == 10


@pytest.mark.parametrize("raw", ["abc", "", "1.5", "0", "-3", "1001", "1e3"])
def test_anything_else_is_a_message_naming_the_parameter_and_its_range(raw):
    with pytest.raises(ValueError, match=rf"^top must be a whole number from 1 to 1000, got '{raw}'$"):
        whole_number({"top": raw}, "top", 10, 1, 1000)


@pytest.mark.parametrize("on", [False, True])
def test_faust_debug_pages_follow_the_debug_views_setting(on):
    from stream.config import Settings
    from stream.worker.app import new_faust_app

    conf = new_faust_app(Settings(debug_views=on)).conf
    assert [conf.web_router_enabled, conf.web_tables_enabled, conf.web_graph_enabled, conf.web_stats_enabled] == [on] * 4
