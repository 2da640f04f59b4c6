"""A worker's replay: what is replayed, progress, catch-up, and the steps after it."""

import re

from stream.contract.changes import SegmentChange
from stream.contract.records import Source
from stream.core.replay_tracker import ReplayTracker, duration


def tracker(**kw) -> ReplayTracker:
    return ReplayTracker(start={("b", 0): 2, ("b", 1): 0}, until={("b", 0): 5, ("b", 1): 3}, **kw)


def change(reason: str, mode: str) -> SegmentChange:
    return SegmentChange("u", None, 1, 1, 0.1, reason, mode, None, "2024-01-01T00:00:00.000+00:00")


def test_events_below_the_end_offsets_are_replayed():
    t = tracker()
    assert t.mode_of(Source("b", 0, 4)) == "replay" and t.mode_of(Source("b", 0, 5)) == "live"
    assert t.mode_of(Source("other", 0, 0)) == "live" and t.mode_of(None) == "live"
    assert ReplayTracker.live().mode_of(Source("b", 0, 0)) == "live"


def test_progress_counts_from_the_start_offsets_to_the_end():
    t = tracker()
    assert (t.total, t.remaining(), t.caught_up) == (6, 6, False)
    for offset in (2, 3):
        t.observe(Source("b", 0, offset))
    t.observe(Source("b", 1, 2))
    progress = t.progress()
    assert (progress["done"], progress["lag"], progress["caught_up"]) == (5, 1, False)
    t.observe(Source("b", 0, 4))
    assert t.caught_up and t.progress()["lag"] == 0 and t.caught_up_after_s is not None


def test_the_catalogue_comes_first_until_its_end_is_encoded():
    t = tracker(catalogue_until={("items", 0): 10})
    assert not t.catalogue_ready
    t.observe_item(Source("items", 0, 8))
    assert not t.catalogue_ready
    t.observe_item(Source("items", 0, 9))
    assert t.catalogue_ready


def test_without_suppress_catching_up_goes_live():
    t = tracker()
    assert t.next_step(model_version=3) is None and t.sweep_mode() == "replay"
    t.observe(Source("b", 0, 4))
    t.observe(Source("b", 1, 2))
    assert t.next_step(3) == "live" and t.finished and t.sweep_mode() == "live"
    assert t.next_step(3) is None


def test_with_suppress_one_rebuild_then_the_final_membership():
    t = tracker(suppress=True, rebuild="canonical")
    assert not t.publishes(change("event", "replay")) and not t.publishes(change("model_update", "replay"))
    assert t.publishes(change("replay", "replay")) and t.publishes(change("event", "live"))
    t.observe(Source("b", 0, 4))
    t.observe(Source("b", 1, 2))
    assert t.next_step(model_version=7) == "rebuild" and t.rebuild_requested_at == 7
    assert t.next_step(8) is None  # asked once
    assert not t.final_version_arrived(rebuilt_version=7)
    assert t.final_version_arrived(rebuilt_version=8)
    t.finished = True  # the final membership was published
    assert not t.final_version_arrived(9)


def test_a_live_worker_replays_nothing_and_publishes_everything():
    t = ReplayTracker.live()
    assert not t.replaying and t.finished and t.catalogue_ready and t.next_step(1) is None
    assert t.publishes(change("event", "live")) and t.sweep_mode() == "live" and not t.final_version_arrived(5)


def test_progress_is_one_readable_line_with_an_eta_once_a_rate_exists():
    t = ReplayTracker(start={("b", 0): 0}, until={("b", 0): 5000}, started=0.0)
    assert t.line(now=1.0) == "replay: 0 of 5,000 events (0%), time left unknown"
    t.observe_batch([Source("b", 0, 999)], now=10.0)  # the first batch starts the rate's clock
    assert t.rate(now=10.0) is None and t.eta_s(now=10.0) is None and t.progress(now=10.0)["eta_s"] is None
    t.observe_batch([Source("b", 0, 1999)], now=12.0)
    assert t.rate(now=12.0) == 500.0 and t.eta_s(now=12.0) == 6.0
    assert t.line(now=12.0) == "replay: 2,000 of 5,000 events (40%), 500/s, about 6 s left"
    assert (t.progress(now=12.0)["events_per_s"], t.progress(now=12.0)["eta_s"]) == (500.0, 6.0)
    t.observe_batch([Source("b", 0, 4999)])
    assert t.line().startswith("replay: 5,000 of 5,000 events (100%), ") and "caught up after" in t.line()
    assert t.eta_s() == 0.0
    one_batch = ReplayTracker(start={("b", 0): 0}, until={("b", 0): 10})
    one_batch.observe_batch([Source("b", 0, 9)])
    assert re.fullmatch(r"replay: 10 of 10 events \(100%\), caught up after \d+ s", one_batch.line())


def test_durations_are_as_precise_as_an_estimate_deserves():
    assert [duration(s) for s in (4.6, 89, 600, 5340, 5399, 7500)] == ["5 s", "89 s", "10 min", "89 min", "1 h 30 min", "2 h 5 min"]


def test_the_replay_is_not_caught_up_while_an_event_it_forwarded_is_on_its_way():
    t = tracker()
    t.forwarded([Source("b", 0, 4), Source("b", 0, 7)], back=[])  # offset 7 is live: not waited for
    t.observe(Source("b", 0, 4))
    t.observe(Source("b", 1, 2))
    assert t.remaining() == 0 and not t.caught_up and t.next_step(model_version=1) is None
    assert t.progress()["forwards_on_their_way"] == 1
    t.forwarded([], back=[Source("b", 0, 4)])  # arrived at its user's partition, under its first position
    assert t.caught_up and t.next_step(1) == "live" and t.forwards == set()
