"""Decayed user embeddings, dedup bookkeeping and the compact table encoding."""

import struct

import numpy as np
import pytest

from stream.contract.changes import SegmentChange
from stream.contract.records import Source
from stream.core import user_state
from stream.core.user_state import PendingBehavior, UserState, decay_factor, id_digest

DAY = 86_400.0


def unit(*xs):
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_decay_halves_per_half_life():
    assert decay_factor(30 * DAY, 30 * DAY) == pytest.approx(0.5)


def test_decayed_sum_is_independent_of_arrival_order():
    events = [(unit(1, 0, 0), 1.0, 0.0), (unit(0, 1, 0), 2.0, 10 * DAY), (unit(0, 0, 1), 0.5, 40 * DAY)]
    forward, backward = UserState("u"), UserState("u")
    for v, w, t in events:
        forward.add_vector(v, w, t, 30 * DAY)
    for v, w, t in reversed(events):
        backward.add_vector(v, w, t, 30 * DAY)
    np.testing.assert_allclose(forward.vector_sum, backward.vector_sum, rtol=1e-6)
    assert forward.ref_ts == backward.ref_ts == 40 * DAY


def test_recent_taste_dominates_after_some_half_lives():
    state = UserState("u")
    for day in range(10):
        state.add_vector(unit(1, 0), 1.0, day * DAY, 7 * DAY)
    for day in range(60, 65):
        state.add_vector(unit(0, 1), 1.0, day * DAY, 7 * DAY)
    assert state.vector[1] > 0.95


def test_dedup_by_offset_and_by_event_id_within_the_horizon():
    state = UserState("u")
    state.add_vector(unit(1, 0), 1.0, 100 * DAY, DAY)
    state.mark_applied("e1", 100 * DAY, Source("reviews", 0, 10), horizon_s=30 * DAY)
    assert state.already_applied("e1", Source("reviews", 0, 10))  # redelivery
    assert state.already_applied("other", Source("reviews", 0, 9))  # replay of an older offset
    assert state.already_applied("e1", Source("reviews", 2, 99))  # same event published again
    assert not state.already_applied("e2", Source("reviews", 0, 11))
    # Digests older than the horizon are pruned; events that old are refused, not re-applied.
    state.add_vector(unit(0, 1), 1.0, 140 * DAY, DAY)
    state.mark_applied("e3", 140 * DAY, Source("reviews", 0, 12), horizon_s=30 * DAY)
    assert set(state.seen) == {id_digest("e3")}
    assert state.beyond_horizon(100 * DAY, 30 * DAY)
    assert not state.beyond_horizon(111 * DAY, 30 * DAY)


def roundtrip(state: UserState) -> UserState:
    return UserState.from_bytes(state.to_bytes())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_roundtrip_bytes_and_size():
    state = UserState("user-1", segment=3, distance=0.5, model_version=7, reviews=2, actions={"view": 4})
    state.add_vector(unit(*range(1, 385)), 1.0, 5.0, DAY)
    for n in range(40):
        state.mark_applied(f"e{n}", 5.0, Source("behaviors", 1, 42 + n), horizon_s=DAY)
        state.touch_item(f"item{n}", keep=200)
    state.pending.append(PendingBehavior("e2", "item9", "cart", 6.0, Source("behaviors", 1, 43)))
    raw = state.to_bytes()
    back = UserState.from_bytes(raw)
    assert back.to_bytes() == raw  # stable: rewriting an unchanged row changes nothing
    assert cosine(back.vector_sum, state.vector_sum) > 0.999_999
    assert (back.user_id, back.segment, back.distance, back.model_version) == ("user-1", 3, 0.5, 7)
    assert (back.reviews, back.actions, back.weight, back.ref_ts) == (2, {"view": 4}, 1.0, 5.0)
    assert back.pending == state.pending and back.offsets == state.offsets
    assert back.items == state.items and back.acted == state.acted
    assert "item7" in back.acted_on and "item40" not in back.acted_on
    assert set(back.seen) == set(state.seen) and len(back.seen) == 40
    # float16 vector, an 8-byte digest and a 1-byte time step per event, 4 bytes a listed item,
    # the filter's first stage (4 + 100 bytes), and about 175 bytes of fixed fields, strings, the
    # offset, the pending event and the (empty) member counts' length
    assert len(raw) <= 384 * 2 + 40 * (8 + 1 + 4) + 104 + 175


def test_no_vector_no_segment_roundtrip():
    state = UserState("u")
    state.mark_applied("e1", 7.0, Source("behaviors", 0, 0), horizon_s=DAY)
    state.pending.append(PendingBehavior("e1", "new", "view", 7.0, Source("behaviors", 0, 0)))
    back = roundtrip(state)
    assert back.vector_sum is None and back.segment is None and back.distance is None
    assert back.model_version is None and back.pending == state.pending and back.seen == {id_digest("e1"): 60.0}


def test_roundtrip_keeps_exactly_once_decisions():
    """Offsets, digests and ref_ts survive exactly; a digest's time only ever moves later (up to
    a minute), so a row read back prunes no digest the original would have kept."""
    rng = np.random.default_rng(1)
    state = UserState("u")
    times = np.sort(rng.uniform(0, 40 * DAY, 300))  # ~3 h apart: many steps of 255+ minutes
    applied = []
    for n, ts in enumerate(times):
        state.add_vector(unit(*rng.normal(size=8)), 1.0, float(ts), 30 * DAY)
        partition = n % 3
        state.mark_applied(f"e{n}", float(ts), Source("behaviors", partition, 1_000 + n), horizon_s=30 * DAY)
        applied.append((f"e{n}", partition, 1_000 + n))
    back = roundtrip(state)
    assert back.offsets == state.offsets and back.ref_ts == state.ref_ts
    assert list(back.seen) == sorted(state.seen, key=state.seen.__getitem__)  # oldest first
    for digest, ts in state.seen.items():
        assert ts <= back.seen[digest] < ts + 60
    for event_id, partition, offset in applied:
        for probe in (Source("behaviors", partition, offset), Source("behaviors", 9, 0)):
            assert back.already_applied(event_id, probe) == state.already_applied(event_id, probe)
    assert not back.already_applied("new", Source("behaviors", 0, 5_000))
    for ts in (0.0, 20 * DAY, state.ref_ts - 30 * DAY - 1, state.ref_ts):
        assert back.beyond_horizon(ts, 30 * DAY) == state.beyond_horizon(ts, 30 * DAY)


def test_negative_event_times_roundtrip():
    state = UserState("u")
    for n, ts in enumerate((-5_000_000.5, -1.0, 0.0, 12.3)):
        state.mark_applied(f"e{n}", ts, Source("reviews", 0, n), horizon_s=1e9)
    assert list(roundtrip(state).seen.values()) == [-4_999_980.0, 0.0, 0.0, 60.0]


def test_float16_rows_keep_the_direction_over_many_batches():
    """The worst case for rounding: a user written back after every one of 3,000 events (a year
    of them), against the same events folded in float32 without ever leaving memory."""
    rng = np.random.default_rng(0)
    exact, stored = UserState("u"), UserState("u")
    times = np.sort(rng.uniform(0, 365 * DAY, 3_000))
    order = np.argsort(np.arange(3_000) + rng.normal(0, 5, 3_000))  # some arrive a few places late
    for n in order:
        vector, weight = unit(*rng.normal(size=384)), float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        exact.add_vector(vector, weight, float(times[n]), 30 * DAY)
        stored.add_vector(vector, weight, float(times[n]), 30 * DAY)
        stored = roundtrip(stored)
    assert cosine(stored.vector, exact.vector) >= 0.9999
    assert stored.ref_ts == exact.ref_ts


def test_rows_of_another_format_are_refused_clearly():
    head = b'{"u":"u1","n":0,"i":0}'
    old = struct.pack("<I", len(head)) + head  # format 1: header length, JSON header, arrays
    with pytest.raises(ValueError, match="SEGSTREAM_APP_ID"):
        UserState.from_bytes(old)
    raw = UserState("u", segment=1).to_bytes()
    with pytest.raises(ValueError, match="format-4"):
        UserState.from_bytes(raw[:-1])
    with pytest.raises(ValueError, match="its fields"):
        UserState.from_bytes(raw + b"\x00")


def scrambled(state: UserState, days: int = 100) -> tuple[list[float], list[float]]:
    """A day's event for ``days`` days in a random order, as a running replay applies them:
    (times applied, times refused as older than a digest dropped)."""
    applied, refused = [], []
    for n, day in enumerate(np.random.default_rng(2).permutation(days)):
        ts = float(day) * DAY
        if state.dropped(ts):
            refused.append(ts)
            continue
        state.mark_applied(f"e{day}", ts, Source("behaviors", 0, n), horizon_s=None)
        applied.append(ts)
    return applied, refused


def test_while_a_replay_runs_every_digest_is_kept_then_the_horizon_prunes_again():
    state = UserState("u")
    times, refused = scrambled(state)
    assert len(state.seen) == 100 and refused == [] and not state.dropped(0.0)
    state.add_vector(unit(1, 0), 1.0, 99 * DAY, DAY)
    state = roundtrip(state)  # oldest digest first again
    state.mark_applied("live", 99 * DAY, Source("behaviors", 0, 100), horizon_s=30 * DAY)
    assert sorted(state.seen.values()) == [t for t in sorted(times) if t >= 69 * DAY] + [99 * DAY]
    assert state.dropped(68 * DAY) and not state.dropped(68 * DAY + 1)
    assert roundtrip(state).dropped_until == state.dropped_until == 68 * DAY


def test_a_replays_digests_are_bounded_and_the_older_events_refused(monkeypatch):
    monkeypatch.setattr(user_state, "REPLAY_SEEN_MAX", 16)
    state = UserState("u")
    applied, refused = scrambled(state)
    assert len(state.seen) <= 16 and len(applied) + len(refused) == 100
    forgotten = sorted(set(applied) - set(state.seen.values()))
    assert forgotten and all(state.dropped(t) for t in forgotten + refused)  # a copy of any is refused
    assert not any(state.dropped(t) for t in state.seen.values())  # the newest are kept


def test_the_last_change_is_kept_byte_for_byte():
    for source in (Source("behaviors", 3, 1_234_567), None):
        change = SegmentChange.decided("u", 2, 5, 17, 0.4321, "event" if source else "model_update", "live", source)
        state = UserState("u", segment=5)
        state.last_change = change
        assert roundtrip(state).last_change.to_bytes() == change.to_bytes()
    assert roundtrip(UserState("u")).last_change is None


def test_rows_of_format_2_are_read_with_what_they_may_have_dropped():
    state = UserState("u", ref_ts=40 * DAY)
    for day in (35, 38, 40):
        state.mark_applied(f"e{day}", day * DAY, Source("behaviors", 0, day), horizon_s=30 * DAY)
    row = state.to_bytes()
    fixed = struct.unpack_from("<BBddIidQdHHHHIHB", row)
    format_2 = struct.pack("<BBddIidQHHHHIH", 2, *fixed[1:8], *fixed[9:-1]) + row[struct.calcsize("<BBddIidQdHHHHIHB"):-4]
    read = UserState.from_bytes(format_2)
    assert read.seen == roundtrip(state).seen and read.offsets == state.offsets
    assert read.dropped(34 * DAY) and not read.dropped(35 * DAY)  # older than its oldest digest: maybe pruned


def test_rows_of_format_3_fill_the_items_filter_from_their_item_list():
    state = UserState("u")
    for n in range(30):
        state.touch_item(f"item{n}", keep=200)
    row = state.to_bytes()
    fixed = struct.unpack_from("<BBddIidQdHHHHIHB", row)
    size = struct.calcsize("<BBddIidQdHHHHIHB")
    items_end = size + 2 + len("u") + 4 * 30
    filter_end = items_end + len(state.acted.to_bytes())
    format_3 = struct.pack("<BBddIidQdHHHHIH", 3, *fixed[1:-1]) + row[size:items_end] + row[filter_end:-4]  # no member counts
    read = UserState.from_bytes(format_3)
    assert read.items == state.items and read.acted == state.acted and read.to_bytes() == row


def test_a_heavy_user_never_gets_an_item_back_however_long_ago_they_acted_on_it():
    """A 200-item list forgot the older items of users with more; the filter does not."""
    state = UserState("heavy")
    for n in range(1000):
        state.touch_item(f"movie-{n}", keep=50)
    back = UserState.from_bytes(state.to_bytes())
    assert all(f"movie-{n}" in back.acted_on for n in range(1000)) and len(back.items) == 50
    never = [f"other-{n}" for n in range(20_000)]
    assert back.acted_on.among(never).mean() < 0.01  # the filter's false-positive bound
    assert 990 <= back.acted.count < 1000  # an item taken for one already added is not added again
    assert len(back.acted.to_bytes()) < 4.4 * 1000
