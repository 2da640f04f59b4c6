"""Decayed user embeddings, dedup bookkeeping and the compact table encoding."""

import numpy as np
import pytest

from stream.user_state import PendingBehavior, UserState, decay_factor, id_digest

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
    state.mark_applied("e1", 100 * DAY, "reviews", 0, 10, horizon_s=30 * DAY)
    assert state.already_applied("e1", "reviews", 0, 10)  # redelivery
    assert state.already_applied("other", "reviews", 0, 9)  # replay of an older offset
    assert state.already_applied("e1", "reviews", 2, 99)  # same event published again
    assert not state.already_applied("e2", "reviews", 0, 11)
    # Digests older than the horizon are pruned; events that old are refused, not re-applied.
    state.add_vector(unit(0, 1), 1.0, 140 * DAY, DAY)
    state.mark_applied("e3", 140 * DAY, "reviews", 0, 12, horizon_s=30 * DAY)
    assert set(state.seen) == {id_digest("e3")}
    assert state.beyond_horizon(100 * DAY, 30 * DAY)
    assert not state.beyond_horizon(111 * DAY, 30 * DAY)


def test_roundtrip_bytes_and_size():
    state = UserState("user-1", segment=3, distance=0.5, model_version=7, reviews=2, actions={"view": 4})
    state.add_vector(unit(*range(1, 385)), 1.0, 5.0, DAY)
    for n in range(40):
        state.mark_applied(f"e{n}", 5.0, "behaviors", 1, 42 + n, horizon_s=DAY)
    state.pending.append(PendingBehavior("e2", "item9", "cart", 6.0, ("behaviors", 1, 43)))
    raw = state.to_bytes()
    back = UserState.from_bytes(raw)
    assert back.to_bytes() == raw
    np.testing.assert_array_equal(back.vector_sum, state.vector_sum)
    assert back.pending == state.pending and back.offsets == state.offsets and back.segment == 3
    assert back.seen == state.seen and len(back.seen) == 40
    assert len(raw) < 384 * 4 + 40 * 16 + 400  # vector + seen digests + a small header
