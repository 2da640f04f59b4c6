"""One micro-batch through the functional core (no Kafka): validate, state, model, changes."""

from __future__ import annotations

import json

import numpy as np

from stream.config import load_settings
from stream.contract.records import Message, Source
from stream.core.catalogue import CatalogueItem
from stream.core.local_run import LocalRun
from stream.core.user_state import UserState

DAY_MS = 86_400_000


def msg(topic: str, offset: int, doc: dict | bytes, partition: int = 0) -> Message:
    value = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    key = None if isinstance(doc, bytes) else str(doc["user_id"]).encode()
    return Message(topic, partition, offset, key, value)


def behavior(user: str, n: int, item: str, ts_ms: int = 1_000 * DAY_MS) -> dict:
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
    later = [msg(topic, 4 + n, behavior("u1", 1 + n, "b1", ts_ms=(1_100 + n) * DAY_MS)) for n in range(3)]
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
            msg(topic, 1, behavior("u1", 0, "a1", ts_ms=100 * DAY_MS)),
            msg(topic, 2, behavior("u1", 1, "a2", ts_ms=80 * DAY_MS)),
            msg(topic, 3, behavior("u1", 2, "a2", ts_ms=95 * DAY_MS)),
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
    history = [msg(topic, 100 + n, behavior("drifter", n, "a1" if n % 2 else "a2", ts_ms=(1000 + n) * day)) for n in range(10)]
    h.run(others + history)
    start = h.state("drifter").segment
    assert start == h.state("a").segment
    for n in range(1, 6):
        h.run([msg(topic, 200 + n, behavior("drifter", 100 + n, "b1", ts_ms=(1040 + n) * day))])
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
    viewed = {**behavior("u1", 6, "a1", ts_ms=1_001 * DAY_MS), "action": "view"}
    h.run([msg(topic, 10, behavior("u1", 5, "a2", ts_ms=1_001 * DAY_MS)), msg(topic, 11, viewed)])
    action_segment = h.state("u1").segment
    profile = h.profiles.profile(action_segment)
    assert profile["top_categories"][0]["category"] == "Action"
    assert h.profiles.popular_items(action_segment, 2) == ["a2", "a1"]
    assert h.state("u1").knows_item("a2") and not h.state("u1").knows_item("b1")
