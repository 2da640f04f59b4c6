"""A small shop gets segments: fewer users than SEGSTREAM_SEED_USERS, default settings."""

from __future__ import annotations

from kafka_io import produce
from sklearn.metrics import normalized_mutual_info_score

from stream.datasets import movielens
from stream.tools.launcher import eventually

TASTES = ("Drama", "Comedy", "Documentary", "Horror", "Thriller", "Action", "Romance", "Western")


def test_48_users_of_8_tastes_all_get_a_segment_within_60_s(settings_for, start_worker):
    settings = settings_for(model_publish_interval_s=1.0)  # k, seed_users, seed_idle_s: the defaults
    assert (settings.k, settings.seed_users) == (8, 200)
    worker = start_worker(settings)
    pools = {taste: [m for m in movielens.movies() if m.genres == (taste,)][:12] for taste in TASTES}
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for pool in pools.values() for m in pool])
    worker.wait_until(lambda h: h["catalogue_items"] == 96, 120, "the catalogue")
    taste_of, events = {}, []
    for t, taste in enumerate(TASTES):
        for u in range(6):
            user = f"shop-{taste.lower()}-{u}"
            taste_of[user] = t
            for n in range(6):
                movie = pools[taste][(u + 2 * n) % 12]
                events.append((user, {"event_id": f"{user}-{n}", "user_id": user, "item_id": movie.item_id,
                                      "action": "purchase", "ts": 1_700_000_000_000 + n * 60_000}))
    produce(settings, settings.topic_behaviors, events)
    worker.wait_until(lambda h: h["counters"]["applied"] == len(events), 60, "the events")
    waiting = eventually(lambda: worker.get("/segments")[1], lambda s: s["users_waiting_for_seed"] == 48, 20)
    assert waiting["users_waiting_for_seed"] == 48 and not waiting["seeded"]  # said truthfully meanwhile

    def segments() -> dict[str, int | None]:
        return {u: worker.get(f"/users/{u}")[1]["segment"] for u in taste_of}

    found = eventually(segments, lambda s: None not in s.values(), 60, every_s=1.0)
    assert None not in found.values(), found
    nmi = normalized_mutual_info_score([taste_of[u] for u in found], list(found.values()))
    print(f"NMI tastes vs segments: {nmi:.3f}")
    assert nmi > 0.8
    summary = worker.get("/segments")[1]
    assert summary["seeded"] and summary["users_waiting_for_seed"] == 0
    assert summary["model_events"][0]["event"] == "seed" and summary["model_events"][0]["users"] == 48
