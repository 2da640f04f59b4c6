"""One micro-batch through the functional core (no Kafka): validate, state, model, changes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from models.segmentation import Segmentation
from stream.config import load_settings
from stream.contract.records import Message, Source
from stream.core.catalogue import CatalogueItem
from stream.core.local_run import LocalRun
from stream.core.pipeline import BatchResult, Pipeline
from stream.core.replay_tracker import ReplayTracker
from stream.core.user_state import UserState
from stream.core.user_store import InMemoryUserStore
from stream.factories import segmentation_params

DAY_MS = 86_400_000
T0_MS = 1_600_000_000_000  # 2020-09-13: a plausible event time, well inside the accepted window


def top(profiles, segment, n):
    """The ``n`` items of the highest decayed count (ties by id)."""
    counts = profiles.item_counts(segment)
    return sorted(counts, key=lambda i: (-counts[i], i))[:n]


def msg(topic: str, offset: int, doc: dict | bytes, partition: int = 0) -> Message:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    key = None if isinstance(doc, bytes) else str(doc["user_id"]).encode()
    return Message(topic, partition, offset, key, value)


def behavior(user: str, n: int, item: str, ts_ms: int = T0_MS + 1_000 * DAY_MS) -> dict:
    return {"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "action": "purchase", "ts": ts_ms}


class Harness:
    """One worker and its model owner in one process (LocalRun), with a small catalogue."""

    def __init__(self, k: int = 2, seed_users: int = 4, **settings: object) -> None:
        self.settings = load_settings(env={}, k=k, seed_users=seed_users, **settings)
        unit = lambda *xs: (np.asarray(xs, dtype=np.float32) / np.linalg.norm(xs)).astype(np.float32)  # noqa: E731
        self.items = {
            "a1": CatalogueItem(unit(1, 0, 0), ("Action",)),
            "a2": CatalogueItem(unit(0.9, 0.1, 0), ("Action", "Thriller")),
            "b1": CatalogueItem(unit(0, 0, 1), ("Romance",)),
            "b2": CatalogueItem(unit(0, 0.1, 0.9), ("Romance", "Comedy")),
        }
        self.local = LocalRun(self.settings, 3, self.items)

    @property
    def model(self):
        return self.local.segmentation.model

    @property
    def profiles(self):
        return self.local.segmentation.profiles

    def run(self, messages: list[Message]):
        return self.local.batch(messages)

    def state(self, user: str) -> UserState:
        return self.local.users.get(user)


def test_seeding_assigns_buffered_users_then_events_move_users():
    h = Harness()
    topic = h.settings.topic_behaviors
    first = h.run([msg(topic, 0, behavior("u1", 0, "a1")), msg(topic, 1, behavior("u2", 0, "a2"))])
    assert first.changes == [] and not h.model.seeded and h.model.version == 0
    second = h.run([msg(topic, 2, behavior("u3", 0, "b1")), msg(topic, 3, behavior("u4", 0, "b2"))])
    assert h.model.seeded and h.model.version == 1
    assert {c.user_id for c in second.changes} == {"u1", "u2", "u3", "u4"}
    assert all(c.reason == "model_update" and c.previous_segment is None for c in second.changes)
    seg = {c.user_id: c.segment for c in second.changes}
    assert seg["u1"] == seg["u2"] != seg["u3"] == seg["u4"]
    assert h.state("u1").segment == seg["u1"] and h.state("u1").model_version == 1

    # u1 now buys b-items for a long time: the decayed embedding turns, u1 changes segment.
    later = [msg(topic, 4 + n, behavior("u1", 1 + n, "b1", ts_ms=T0_MS + (1_100 + n) * DAY_MS)) for n in range(3)]
    moved = h.run(later)
    assert [(c.user_id, c.previous_segment, c.segment, c.reason) for c in moved.changes] == [
        ("u1", seg["u1"], seg["u3"], "event")
    ]
    assert moved.changes[0].source == Source(topic, 0, 6)
    assert h.model.sizes.sum() == 4


def test_duplicates_are_skipped_and_counted():
    h = Harness(seed_users=1, k=1)
    topic = h.settings.topic_behaviors
    h.run([msg(topic, 0, behavior("u1", 0, "a1")), msg(topic, 1, behavior("u1", 1, "a2"))])
    again = h.run([msg(topic, 1, behavior("u1", 1, "a2")), msg(topic, 7, behavior("u1", 0, "a1"))])
    assert (again.applied, again.duplicates) == (0, 2)
    assert h.state("u1").actions == {"purchase": 2}


def test_unknown_items_are_held_then_applied_or_dead_lettered_when_too_many():
    h = Harness(seed_users=1, k=1, pending_max=2)
    topic = h.settings.topic_behaviors
    result = h.run([msg(topic, n, behavior("u1", n, f"new-{n}")) for n in range(3)])
    assert h.state("u1").pending[0].item_id == "new-1"  # new-0 overflowed
    (dead,) = result.dead_letters
    assert dead.key == b"u1" and "new-0" in dead.error and dead.source.offset == 0
    h.items["new-1"] = h.items["b1"]
    h.run([msg(topic, 3, behavior("u1", 3, "a1"))])
    assert [p.item_id for p in h.state("u1").pending] == ["new-2"]
    assert h.state("u1").vector is not None


def test_bad_messages_become_dead_letters_and_events_beyond_the_horizon_too():
    h = Harness(seed_users=1, k=1, dedup_horizon_days=10)
    topic = h.settings.topic_behaviors
    result = h.run(
        [
            msg(topic, 0, b"\x00\x01"),
            msg(topic, 1, behavior("u1", 0, "a1", ts_ms=T0_MS + 100 * DAY_MS)),
            msg(topic, 2, behavior("u1", 1, "a2", ts_ms=T0_MS + 80 * DAY_MS)),
            msg(topic, 3, behavior("u1", 2, "a2", ts_ms=T0_MS + 95 * DAY_MS)),
        ]
    )
    errors = [d.error for d in result.dead_letters]
    assert len(errors) == 2 and "not JSON" in errors[0] and "dedup horizon" in errors[1]
    assert result.applied == 2


def test_a_user_whose_taste_changes_moves_within_five_events_at_the_default_half_life():
    """Ten 'a' purchases over ten days, a month's pause, then one 'b' purchase a day."""
    h = Harness(k=2, seed_users=41)
    assert h.settings.half_life_days == 30.0  # the default
    topic = h.settings.topic_behaviors
    crowd = [(f"{taste}{n}", f"{taste}{1 + n % 2}") for n in range(20) for taste in "ab"]
    others = [msg(topic, n, behavior(u, 0, item)) for n, (u, item) in enumerate([("a", "a1"), ("b", "b1")] + crowd)]
    day = DAY_MS
    history = [msg(topic, 100 + n, behavior("drifter", n, "a1" if n % 2 else "a2", ts_ms=T0_MS + (1000 + n) * day)) for n in range(10)]
    h.run(others + history)
    start = h.state("drifter").segment
    assert start == h.state("a").segment
    for n in range(1, 6):
        h.run([msg(topic, 200 + n, behavior("drifter", 100 + n, "b1", ts_ms=T0_MS + (1040 + n) * day))])
        if h.state("drifter").segment != start:
            break
    assert h.state("drifter").segment == h.state("b").segment, "still in the old segment after 5 events"
    print(f"moved after {n} events")


def test_applied_events_count_in_the_profile_of_their_users_segment():
    h = Harness(k=2, seed_users=4)
    topic = h.settings.topic_behaviors
    users = [("u1", "a1"), ("u2", "a2"), ("u3", "b1"), ("u4", "b2")]
    h.run([msg(topic, n, behavior(u, 0, item)) for n, (u, item) in enumerate(users)])
    # Events applied before the model is seeded count once a sweep gives their user a segment.
    viewed = {**behavior("u1", 6, "a1", ts_ms=T0_MS + 1_001 * DAY_MS), "action": "view"}
    h.run([msg(topic, 10, behavior("u1", 5, "a2", ts_ms=T0_MS + 1_001 * DAY_MS)), msg(topic, 11, viewed)])
    action_segment = h.state("u1").segment
    profile = h.profiles.profile(action_segment)
    assert profile["top_categories"][0]["category"] == "Action"
    assert top(h.profiles, action_segment, 2) == ["a2", "a1"]
    assert "a2" in h.state("u1").acted_on and "b1" not in h.state("u1").acted_on


def test_bad_clocks_are_dead_letters_and_the_users_real_events_still_apply():
    h = Harness(seed_users=1, k=1)
    topic = h.settings.topic_behaviors
    now_ms = int(h.local.pipeline.clock() * 1000)
    bad = [now_ms * 1000, now_ms // 1000, 10**15, "9999-01-01T00:00:00Z", "1969-07-20T00:00:00Z", -1, "NaN"]
    messages = [msg(topic, n, {**behavior("u1", n, "a1"), "ts": ts}) for n, ts in enumerate(bad)]
    good = [msg(topic, 10 + n, behavior("u1", 10 + n, "a2", ts_ms=now_ms - (5 - n) * DAY_MS)) for n in range(3)]
    result = h.run(messages + good)
    reasons = [d.error for d in result.dead_letters]
    assert result.applied == 3 and len(reasons) == len(bad)
    assert "epoch microseconds" in reasons[0] and "epoch seconds" in reasons[1] and "microseconds" in reasons[2]
    assert "ahead of the wall clock" in reasons[3] and "before the earliest" in reasons[4]
    assert h.state("u1").actions == {"purchase": 3} and h.state("u1").ref_ts <= h.local.pipeline.clock()


def test_profiles_never_count_an_event_past_the_wall_clock():
    h = Harness(seed_users=1, k=1, max_future_s=10 * 86_400)
    topic = h.settings.topic_behaviors
    now = h.local.pipeline.clock()
    h.run([msg(topic, 0, behavior("u1", 0, "a1", ts_ms=int((now + 5 * 86_400) * 1000)))])  # allowed: 5 days ahead
    h.run([msg(topic, 1, behavior("u1", 1, "a2", ts_ms=int(now * 1000))), msg(topic, 2, behavior("u1", 2, "a3", ts_ms=int(now * 1000)))])
    assert h.profiles._ref_ts <= h.local.pipeline.clock()
    assert h.profiles.profile(0)["top_categories"][0]["category"] == "Action"


def test_an_encoder_that_returns_no_finite_vector_dead_letters_the_review_only():
    settings = load_settings(env={}, k=1, seed_users=1)
    run = LocalRun(settings, 3, {}, encode=lambda texts: np.array([[np.nan, 0, 0], [0.0, 0.0, 0.0], [1.0, 0, 0]][: len(texts)], dtype=np.float32))
    topic = settings.topic_reviews
    reviews = [{"event_id": f"r{n}", "user_id": f"u{n}", "item_id": "i", "text": f"text {n}", "ts": T0_MS} for n in range(3)]
    result = run.batch([msg(topic, n, r) for n, r in enumerate(reviews)])
    assert result.applied == 1 and [d.source.offset for d in result.dead_letters] == [0, 1]
    assert all("not finite or is zero" in d.error for d in result.dead_letters)
    assert run.users.get("u2").vector is not None and run.users.get("u0").vector is None


def test_held_behaviours_apply_when_their_item_arrives_without_another_event():
    h = Harness(seed_users=2, k=2)
    topic = h.settings.topic_behaviors
    h.run([msg(topic, 0, behavior("u1", 0, "a1")), msg(topic, 1, behavior("u2", 0, "b1"))])
    h.run([msg(topic, 2, behavior("u3", 0, "late-1")), msg(topic, 3, behavior("u3", 1, "late-2"))])
    waiting = h.local.pipeline.waiting
    assert waiting.totals() == {"users": 1, "behaviours": 2, "items": 2, "unindexed_users": 0}
    assert waiting.arrived(lambda i: i in h.items, 10) == []
    h.items["late-1"] = h.items["b2"]
    ready = waiting.arrived(lambda i: i in h.items, 10)
    assert ready == ["u3"]
    result = h.local.pipeline.release([h.state(u) for u in ready], h.items)
    h.local.users.put_many(result.states.values())
    assert [p.item_id for p in h.state("u3").pending] == ["late-2"] and h.state("u3").vector is not None
    (change,) = result.changes
    assert change.user_id == "u3" and change.reason == "event" and change.source == Source(topic, 0, 2)
    assert waiting.totals()["behaviours"] == 1 and result.update is not None


def test_events_of_another_partitions_users_are_left_to_forward_and_a_forwarded_one_applies():
    settings = load_settings(env={}, k=1, seed_users=1)
    pipeline = Pipeline(settings, Segmentation.new(segmentation_params(settings), 3), partition_of=lambda u: int(u[-1]))
    topic = settings.topic_behaviors
    here, there = msg(topic, 0, behavior("u1", 0, "a1"), partition=1), msg(topic, 1, behavior("u2", 0, "a1"), partition=1)
    keyless = Message(topic, 1, 2, None, json.dumps(behavior("u3", 0, "a1")).encode())
    prepared = pipeline.prepare([here, there, keyless])
    assert [p.event.user_id for p in prepared.parsed] == ["u1"]
    assert prepared.foreign == [(there, "u2"), (keyless, "u3")]
    forwarded = dataclasses.replace(there, forwarded=True)  # on partition 2 it comes under its first position
    assert [p.message.source for p in pipeline.prepare([forwarded]).parsed] == [Source(topic, 1, 1)]


def test_published_sizes_are_the_census_of_the_rows():
    h = Harness(k=2, seed_users=4)
    topic = h.settings.topic_behaviors
    h.run([msg(topic, n, behavior(f"u{n}", 0, item)) for n, item in enumerate(["a1", "a2", "b1", "b2", "a1", "b1"])])
    segmented = [h.state(f"u{n}").segment for n in range(6)]
    assert None not in segmented
    assert h.model.sizes.tolist() == np.bincount(segmented, minlength=2).tolist()


def test_reviews_already_applied_are_not_encoded_again_and_count_as_duplicates():
    settings = load_settings(env={}, k=1, seed_users=1)
    encoded: list[str] = []

    def encode(texts: list[str]) -> np.ndarray:
        encoded.extend(texts)
        return np.tile(np.array([[1.0, 0.0, 0.0]], dtype=np.float32), (len(texts), 1))

    run = LocalRun(settings, 3, {}, encode=encode)
    topic = settings.topic_reviews
    reviews = [
        {"event_id": f"r{n}", "user_id": f"u{n % 2}", "item_id": "i", "text": f"text {n}", "ts": T0_MS + n}
        for n in range(4)
    ]
    run.batch([msg(topic, n, r) for n, r in enumerate(reviews)])
    assert len(encoded) == 4
    encoded.clear()
    # a replay of the same records, the same event at another offset, and one new review
    again = [msg(topic, n, r) for n, r in enumerate(reviews)]
    again += [msg(topic, 9, reviews[0]), msg(topic, 10, {**reviews[1], "event_id": "r-new", "text": "new"})]
    result = run.batch(again)
    assert encoded == ["new"]
    assert (result.applied, result.duplicates) == (1, 5)
    assert run.users.get("u1").reviews == 3


def history(h: Harness, days: int = 100, partitions: int = 4) -> list[Message]:
    """One user's behaviour a day for ``days`` days, spread over ``partitions`` input partitions
    in time order: the user's history as a replay reads it, partition by partition (one read
    whole before the next, as partitions read at different speeds do), months out of order."""
    topic = h.settings.topic_behaviors
    docs = [behavior("u1", day, "a1" if day % 2 else "b1", ts_ms=T0_MS + day * DAY_MS) for day in range(days)]
    return [msg(topic, day // partitions, docs[day], partition=p) for p in reversed(range(partitions)) for day in range(p, days, partitions)]


def replaying(h: Harness, end: int, partitions: int = 4) -> ReplayTracker:
    """The pipeline replays every behaviour partition up to offset ``end``."""
    topic = h.settings.topic_behaviors
    tracker = ReplayTracker(start={(topic, p): 0 for p in range(partitions)}, until={(topic, p): end for p in range(partitions)})
    h.local.pipeline.replay = tracker
    return tracker


def run_in_batches(h: Harness, messages: list[Message], size: int = 10) -> tuple[int, list[str]]:
    """(events applied, dead letters' errors) over batches of ``size``."""
    results = [h.run(messages[n : n + size]) for n in range(0, len(messages), size)]
    return sum(r.applied for r in results), [d.error for r in results for d in r.dead_letters]


def result_errors(result: BatchResult) -> list[str]:
    """The dead letters' errors, "dedup horizon" for the horizon's."""
    return ["dedup horizon" if "dedup horizon" in d.error else d.error for d in result.dead_letters]


def test_a_replay_applies_every_event_of_a_long_history_once_in_any_order():
    h = Harness(seed_users=1, k=1)  # the 30-day dedup horizon
    replaying(h, end=1_000)
    replayed = history(h)
    applied, errors = run_in_batches(h, replayed)
    assert (applied, errors) == (100, [])
    assert h.state("u1").actions == {"purchase": 100} and len(h.state("u1").seen) == 100
    topic = h.settings.topic_behaviors
    copies = [msg(topic, 500, behavior("u1", 3, "b1", ts_ms=T0_MS + 3 * DAY_MS))]  # the same event at another replayed position
    copies.append(dataclasses.replace(copies[0], partition=2, offset=600, forwarded=True))  # ... and forwarded
    again = h.run(copies + replayed[:5])
    assert (again.applied, again.duplicates, again.dead_letters) == (0, 7, [])
    # An event at a live position (past the replay's end) is still checked against the horizon.
    late = h.run([msg(topic, 1_000, behavior("u1", 200, "a1", ts_ms=T0_MS + 10 * DAY_MS))])
    assert result_errors(late) == ["dedup horizon"] and h.state("u1").actions == {"purchase": 100}


def test_once_the_replay_is_over_rows_keep_digests_within_the_horizon_again():
    h = Harness(seed_users=1, k=1)
    tracker = replaying(h, end=1_000)
    run_in_batches(h, history(h))
    tracker.finished = True
    topic = h.settings.topic_behaviors
    h.run([msg(topic, 1_000, behavior("u1", 100, "a1", ts_ms=T0_MS + 100 * DAY_MS))])
    state = h.state("u1")
    assert sorted(state.seen.values())[0] >= (T0_MS / 1000 + 70 * 86_400) and len(state.seen) == 31
    copy = h.run([msg(topic, 1_001, behavior("u1", 50, "a2", ts_ms=T0_MS + 50 * DAY_MS))])
    assert result_errors(copy) == ["dedup horizon"] and h.state("u1").actions == {"purchase": 101}


def test_a_replay_on_top_of_pruned_rows_refuses_what_they_can_no_longer_tell_apart():
    h = Harness(seed_users=1, k=1)
    topic = h.settings.topic_behaviors
    live = [msg(topic, day, behavior("u1", day, "a1", ts_ms=T0_MS + day * DAY_MS)) for day in range(100)]
    run_in_batches(h, live)
    assert len(h.state("u1").seen) < 40  # digests before the horizon dropped
    replaying(h, end=1_000, partitions=1)
    old_copy = msg(topic, 200, behavior("u1", 10, "a1", ts_ms=T0_MS + 10 * DAY_MS))  # its digest is gone
    # beyond the horizon (day 69), but newer than every dropped digest (day 68): a copy would be known
    new_old = msg(topic, 201, behavior("u1", "new", "a1", ts_ms=T0_MS + 68 * DAY_MS + DAY_MS // 2))
    result = h.run(live + [old_copy, new_old])
    assert (result.duplicates, result.applied) == (100, 1)
    (dead,) = result.dead_letters
    assert dead.source.offset == 200 and "cannot be told apart" in dead.error
    assert h.state("u1").actions == {"purchase": 101}


def test_a_copy_whose_digest_was_dropped_is_refused_even_before_the_user_has_a_vector():
    h = Harness(seed_users=1, k=1)
    topic = h.settings.topic_behaviors
    held = [msg(topic, n, behavior("u1", n, "unknown", ts_ms=T0_MS + day * DAY_MS)) for n, day in enumerate((0, 40))]
    h.run(held)
    copy = h.run([dataclasses.replace(held[0], offset=5)])
    assert copy.applied == 0 and "cannot be told apart" in copy.dead_letters[0].error
    assert h.state("u1").actions == {"purchase": 2}


def test_a_replay_waits_for_the_events_it_forwarded():
    settings = load_settings(env={}, k=1, seed_users=1)
    topic = settings.topic_behaviors
    tracker = ReplayTracker(start={(topic, 1): 0}, until={(topic, 1): 2})
    pipeline = Pipeline(settings, Segmentation.new(segmentation_params(settings), 3), tracker, partition_of=lambda u: int(u[-1]))
    users, items = InMemoryUserStore(), {"a1": CatalogueItem(np.array([1.0, 0, 0], dtype=np.float32), ())}
    there = msg(topic, 1, behavior("u2", 0, "a1"), partition=1)
    pipeline.apply(pipeline.prepare([msg(topic, 0, behavior("u1", 0, "a1"), partition=1), there]), np.zeros((0, 3)), users, items)
    tracker.observe_batch([Source(topic, 1, 0), Source(topic, 1, 1)])
    assert tracker.forwards == {Source(topic, 1, 1)} and not tracker.caught_up
    back = pipeline.prepare([dataclasses.replace(there, forwarded=True)])  # under its first position
    assert pipeline.apply(back, np.zeros((0, 3)), users, items).applied == 1 and tracker.caught_up


def test_a_redelivered_event_sends_its_users_last_change_again_byte_for_byte():
    """A worker killed after its rows reached the changelog but before its change events were
    delivered: the next holder finds the redelivered events applied, and sends the user's last
    change again, so membership and rows agree."""
    h = Harness()
    topic = h.settings.topic_behaviors
    events = [msg(topic, n, behavior(f"u{n}", 0, item)) for n, item in enumerate(("a1", "a2", "b1", "b2"))]
    h.run(events[:2])
    seeded = h.run(events[2:])
    moves = [msg(topic, 4 + n, behavior("u1", 1 + n, "b1", ts_ms=T0_MS + (1_100 + n) * DAY_MS)) for n in range(3)]
    moved = h.run(moves)
    assert [c.user_id for c in moved.changes] == ["u1"]
    again = h.run(moves + events[2:3])  # all redelivered: duplicates
    assert again.applied == 0 and again.duplicates == 4 and again.changes == []
    u2_seeded = next(c for c in seeded.changes if c.user_id == "u2")
    assert [c.to_bytes() for c in again.resent] == [moved.changes[0].to_bytes(), u2_seeded.to_bytes()]
    assert UserState.from_bytes(h.state("u1").to_bytes()).last_change == moved.changes[0]


def test_duplicates_at_replayed_positions_send_nothing_again():
    h = Harness()
    topic = h.settings.topic_behaviors
    events = [msg(topic, n, behavior(f"u{n}", 0, item)) for n, item in enumerate(("a1", "a2", "b1", "b2"))]
    h.run(events)
    h.local.pipeline.replay = ReplayTracker({}, {(topic, 0): 100}, {})  # a replay over what was applied
    again = h.run(events)
    assert again.duplicates == 4 and again.resent == []
