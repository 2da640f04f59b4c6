"""``segstream replay`` against the real broker and model: on top of the current state (every
event recognised as applied), and fresh with only the final membership published (two replays
give the same segments)."""

from __future__ import annotations

from collections import defaultdict

from kafka_io import drain, produce

from stream.datasets import movielens


def behavior(user: str, n: int, item: str, day: int) -> dict:
    return {"event_id": f"{user}-{n}", "user_id": user, "item_id": item, "action": "purchase", "ts": 1_600_000_000_000 + day * 86_400_000}


def load_two_tastes(settings) -> tuple[list[str], int]:
    """Catalogue of 40 movies; 30 users, each buying 4 comedies or 4 dramas-only."""
    movies = movielens.movies()
    comedies = [m for m in movies if "Comedy" in m.genres][:10]
    dramas = [m for m in movies if m.genres == ("Drama",)][:10]
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in comedies + dramas])
    users, events = [], []
    for n in range(30):
        user, taste = f"u{n}", comedies if n % 2 else dramas
        users.append(user)
        events += [(user, behavior(user, e, taste[(n + e) % 10].item_id, e)) for e in range(4)]
    produce(settings, settings.topic_behaviors, events)
    return users, len(events)


def applied_then_stopped(settings_for, start_worker):
    """A worker applies :func:`load_two_tastes` live and stops: (settings, users, events)."""
    settings = settings_for(k=2, seed_users=10)
    worker = start_worker(settings)
    users, n_events = load_two_tastes(settings)
    worker.wait_until(lambda h: h["counters"]["applied"] == n_events, 120, "the events")
    worker.stop()
    return settings, users, n_events


def test_replay_on_top_of_current_state_applies_nothing_twice_then_goes_live(settings_for, start_worker):
    settings, users, n_events = applied_then_stopped(settings_for, start_worker)

    replay = start_worker(settings, ["replay", "--from-beginning"])
    health = replay.wait_until(lambda h: h["replay"]["finished"], 60, "the replay to catch up")
    assert health["replay"]["events"] == n_events and health["replay"]["lag"] == 0
    replay.wait_until(lambda h: h["counters"]["duplicates"] == n_events, 30, "every event seen")
    assert replay.health()["counters"]["applied"] == 0
    assert all(replay.get(f"/users/{u}")[1]["events"] == 4 for u in users)

    # After catching up, the same worker goes on live.
    produce(settings, settings.topic_behaviors, [("u0", behavior("u0", 99, "1", 10))])
    replay.wait_until(lambda h: h["counters"]["applied"] == 1, 30, "a live event")
    assert replay.get("/users/u0")[1]["events"] == 5


def test_two_fresh_replays_publish_the_same_final_membership(settings_for, start_worker):
    settings, users, n_events = applied_then_stopped(settings_for, start_worker)
    live_changes = len(drain(settings, settings.topic_changes))

    finals = []
    for _ in range(2):
        replay = start_worker(settings, ["replay", "--from-beginning", "--fresh", "--final-membership-only"])
        health = replay.wait_until(lambda h: h["replay"]["finished"], 120, "the final membership")
        assert health["counters"]["applied"] == n_events and health["model"]["seeded"]
        replay.stop()
        finals.append(drain(settings, settings.topic_changes))

    # Nothing but the final membership: one event per user and replay, reason replay; a
    # user's events share a partition, so the first replay's come first.
    published = finals[1]
    assert sum(c["reason"] != "replay" for _, c in published) == live_changes
    replayed = defaultdict(list)
    for user, change in published:
        if change["reason"] == "replay":
            assert change["mode"] == "replay"
            replayed[user].append(change["segment"])
    assert sorted(replayed) == sorted(users) and all(len(s) == 2 for s in replayed.values())
    segment_of = [{u: s[n] for u, s in replayed.items()} for n in (0, 1)]
    assert segment_of[0] == segment_of[1]
    groups = defaultdict(set)
    for user, segment in segment_of[0].items():
        groups[int(user[1:]) % 2].add(segment)
    assert groups[0].isdisjoint(groups[1]) and all(len(g) == 1 for g in groups.values())
    membership = {k: v["segment"] for k, v in drain(settings, settings.topic_membership)}  # latest per user
    assert membership == segment_of[1]
