"""End to end on the real Tansu broker with the real MiniLM encoder and real worker processes."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from jsonschema import Draft202012Validator
from kafka_io import drain, produce, read

from stream.contract.records import schema
from stream.datasets import movielens
from stream.datasets.bbc import articles
from stream.tools.launcher import eventually

pytestmark = pytest.mark.timeout(300)

LABELS = ("business", "sports", "tech")


def review(user: str, n: int, text: str, ts: int = 1_700_000_000_000) -> dict:
    return {"event_id": f"r-{user}-{n}", "user_id": user, "item_id": f"article-{n}", "text": text, "ts": ts + n}


def behavior(user: str, n: int, item: str, action: str = "click", ts: int = 1_700_000_000_000) -> dict:
    return {"event_id": f"b-{user}-{n}", "user_id": user, "item_id": item, "action": action, "ts": ts + n}


def news_reviews(users_per_label: int = 3, per_user: int = 4) -> tuple[list[tuple[str, dict]], dict[str, str]]:
    """Each user 'reviews' real BBC articles of one label; returns the events and user -> label."""
    by_label: dict[str, list[str]] = {label: [] for label in LABELS}
    for article in articles(per_label=users_per_label * per_user):
        if article.label in by_label:
            by_label[article.label].append(article.text[:600])
    events, label_of = [], {}
    for label in LABELS:
        for u in range(users_per_label):
            user = f"{label}-reader-{u}"
            label_of[user] = label
            for n in range(per_user):
                events.append((user, review(user, n, by_label[label][u * per_user + n])))
    return events, label_of


def last_change_per_user(changes: list[tuple[str | None, dict]]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for key, change in changes:
        assert key == change["user_id"]
        latest[change["user_id"]] = change
    return latest


def test_events_in_segment_changes_out(settings_for, start_worker):
    settings = settings_for(k=3, seed_users=9)
    worker = start_worker(settings)
    events, label_of = news_reviews()
    produce(settings, settings.topic_reviews, events)

    changes = read(settings, settings.topic_changes, count=len(label_of))
    validator = Draft202012Validator(schema("segment_change"))
    for _, change in changes:
        validator.validate(change)
        assert change["mode"] == "live"
        # A seed or refresh also moves users it did not get an event from: no source then.
        assert change["source"] is None or change["source"]["topic"] == settings.topic_reviews
        assert change["source"] is not None or change["reason"] == "model_update"
    latest = last_change_per_user(changes)
    assert set(latest) == set(label_of)
    assert all(c["previous_segment"] is None for _, c in changes[: len(label_of)])

    # Real text, real encoder: readers of one BBC section end up together, sections apart.
    segments_of_label = {label: {latest[u]["segment"] for u in label_of if label_of[u] == label} for label in LABELS}
    assert all(len(s) == 1 for s in segments_of_label.values()), segments_of_label
    assert len(set().union(*segments_of_label.values())) == 3

    status, user = worker.get("/users/tech-reader-1")
    assert status == 200
    assert user["segment"] == latest["tech-reader-1"]["segment"] and user["reviews"] == 4
    # Sizes reach the worker's copy once the owner has applied the sweeps' moves and published.
    status, segments = eventually(
        lambda: worker.get("/segments"), lambda r: sum(s["size"] for s in r[1]["segments"]) == len(label_of), 60
    )
    assert status == 200 and sum(s["size"] for s in segments["segments"]) == len(label_of)
    assert segments["model_version"] >= max(c["model_version"] for _, c in changes)
    assert worker.get("/users/nobody")[0] == 404

    # A reader who switches to another section's articles moves to that section's segment.
    switched = "business-reader-0"
    sport_texts = [a.text[:600] for a in articles(per_label=30) if a.label == "sports"][20:30]
    produce(settings, settings.topic_reviews, [(switched, review(switched, 100 + n, t, ts=1_750_000_000_000)) for n, t in enumerate(sport_texts)])
    worker.wait_until(lambda h: h["counters"]["applied"] >= len(events) + len(sport_texts), 60, "the switch")
    status, user = worker.get(f"/users/{switched}")
    assert user["segment"] == latest["sports-reader-0"]["segment"]


def test_behaviour_on_items_and_unknown_items_are_held(settings_for, start_worker):
    settings = settings_for(k=2, seed_users=2)
    worker = start_worker(settings)
    movies = movielens.movies()[:20]
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movies])
    worker.wait_until(lambda h: h["catalogue_items"] == 20, 60, "the catalogue")
    produce(
        settings,
        settings.topic_behaviors,
        [("alice", behavior("alice", n, movies[n].item_id, "purchase")) for n in range(5)]
        + [("bob", behavior("bob", n, movies[10 + n].item_id, "view")) for n in range(5)]
        + [("bob", behavior("bob", 99, "not-yet-in-catalogue", "cart"))],
    )
    worker.wait_until(lambda h: h["counters"]["applied"] == 11, 60, "the behaviours")
    bob = eventually(lambda: worker.get("/users/bob")[1], lambda b: b["segment"] is not None, 60)
    assert bob["actions"] == {"view": 5, "cart": 1} and bob["pending_unknown_items"] == 1
    assert bob["segment"] is not None

    # What the segments are, and what they recommend.
    alice_segment = worker.get("/users/alice")[1]["segment"]
    # Portraits reach the worker's copy once the owner has applied the batch and published.
    status, portrait = eventually(lambda: worker.get(f"/segments/{alice_segment}"), lambda r: bool(r[1]["top_items"]), 60)
    assert status == 200 and portrait["top_items"] and portrait["label"]
    assert portrait["actions"]["purchase"] > 0
    assert worker.get("/segments/99")[0] == 404
    status, recs = eventually(lambda: worker.get("/users/carol/recommendations?k=3"), lambda r: len(r[1]["items"]) == 3, 60)
    assert status == 200 and recs["segment"] is None and len(recs["items"]) == 3  # cold: global popularity
    bought = {movies[n].item_id for n in range(5)}
    status, recs = worker.get("/users/alice/recommendations?k=10")
    assert recs["segment"] == alice_segment and not bought & {i["item_id"] for i in recs["items"]}
    titles = {m.item_id: movielens.item_event(m)["title"] for m in movies}
    assert all(i["title"] == titles[i["item_id"]] for i in recs["items"] + portrait["top_items"])

    # The item arrives; bob's next event applies the held behaviour. Nothing was dead-lettered.
    produce(settings, settings.topic_items, [("not-yet-in-catalogue", {"item_id": "not-yet-in-catalogue", "title": "A late movie", "categories": ["Drama"]})])
    worker.wait_until(lambda h: h["catalogue_items"] == 21, 60, "the late item")
    produce(settings, settings.topic_behaviors, [("bob", behavior("bob", 100, movies[0].item_id))])
    worker.wait_until(lambda h: h["counters"]["applied"] == 12, 60, "bob's next event")
    assert worker.get("/users/bob")[1]["pending_unknown_items"] == 0
    assert worker.health()["counters"]["dead_letters"] == 0


BAD_INPUT = [
    (b"not json at all", "not JSON"),
    (b"\xff\xfe\x00binary", "not UTF-8"),
    (b'["a", "list"]', "JSON object"),
    (b'{"event_id": "x1", "user_id": "u1", "item_id": "i", "text": "hi"}', "must contain ['ts']"),
    (b'{"event_id": "x2", "user_id": "u1", "item_id": "i", "text": "<p> &nbsp; </p>", "ts": 1700000000000}', "empty after cleaning"),
    (b'{"event_id": "x3", "user_id": "u1", "item_id": "i", "text": "ok", "ts": "last tuesday"}', "ISO-8601"),
    (b'{"event_id": "x4", "user_id": "someone-else", "item_id": "i", "text": "ok", "ts": 1700000000000}', "is not the event's user_id"),
]


def test_bad_input_goes_to_dead_letters_and_worker_keeps_going(settings_for, start_worker):
    settings = settings_for(k=2, seed_users=2)
    worker = start_worker(settings)
    produce(settings, settings.topic_reviews, [("u1", raw) for raw, _ in BAD_INPUT])
    produce(settings, settings.topic_behaviors, [("u1", {"event_id": "b1", "user_id": "u1", "item_id": "i", "action": "like", "ts": 1700000000000})])
    dead = [record for _, record in read(settings, settings.topic_dead_letters, count=len(BAD_INPUT) + 1)]
    assert len(dead) == len(BAD_INPUT) + 1
    by_offset = {(d["source"]["topic"], d["source"]["offset"]): d for d in dead}
    validator = Draft202012Validator(schema("dead_letter"))
    for offset, (raw, reason) in enumerate(BAD_INPUT):
        record = by_offset[(settings.topic_reviews, offset)]
        validator.validate(record)
        assert reason in record["error"], record["error"]
        original = record["value"].encode() if record["value"] is not None else __import__("base64").b64decode(record["value_base64"])
        assert original == raw
    assert "action" in by_offset[(settings.topic_behaviors, 0)]["error"]

    # Still alive and still applying good events.
    produce(settings, settings.topic_reviews, [("u1", review("u1", 1, "Great phone, the battery lasts two days."))])
    worker.wait_until(lambda h: h["counters"]["applied"] == 1, 60, "the good event")
    assert worker.get("/users/u1")[1]["reviews"] == 1


def wait_until_quiet(worker, quiet_s: float = 2.0, timeout_s: float = 120.0) -> dict:
    """Health once the worker owns every input partition and applied nothing for ``quiet_s``."""
    settings = worker.settings
    everything = settings.partitions * len(settings.input_topics)
    seen, since = None, time.monotonic()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health = worker.health()
        if len(health["input_partitions"]) < everything:  # a killed member still holds some
            seen, since = None, time.monotonic()
            time.sleep(0.2)
            continue
        total = health["counters"]["applied"] + health["counters"]["duplicates"] + health["counters"]["dead_letters"]
        if total != seen:
            seen, since = total, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return health
        time.sleep(0.2)
    raise TimeoutError("the worker never went quiet")


def test_redelivery_and_crash_replay_apply_each_event_once(settings_for, start_worker):
    settings = settings_for(k=3, seed_users=5)
    movies = movielens.movies()[:200]
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movies])
    rates = [r for r in movielens.ratings() if int(r.item_id) <= 200][:20000]
    expected = Counter(r.user_id for r in rates)
    batch = [(r.user_id, movielens.behavior_event(r)) for r in rates]

    worker = start_worker(settings)
    worker.wait_until(lambda h: h["catalogue_items"] == 200, 60, "the catalogue")
    produce(settings, settings.topic_behaviors, batch)
    # Crash (SIGKILL) part-way, before Faust commits everything it applied.
    worker.wait_until(lambda h: h["counters"]["applied"] >= 2000, 60, "a part of the stream")
    worker.stop(kill=True)
    worker = start_worker(settings)
    # The same events published again (a producer retry, an operator re-running a load).
    produce(settings, settings.topic_behaviors, batch[:500])
    health = wait_until_quiet(worker)

    wrong = {}
    for user, count in expected.items():
        status, state = worker.get(f"/users/{user}")
        if status != 200 or state["events"] != count:
            wrong[user] = (count, state.get("events"))
    assert not wrong, (len(wrong), list(wrong.items())[:8], health["counters"], health["model"])
    # Copies of the 500 republished events are dropped as duplicates, or, for a user whose
    # history since then spans more than the dedup horizon, refused into the dead letters.
    dead = [d for _, d in drain(settings, settings.topic_dead_letters, quiet_s=1.0)]
    assert all("dedup horizon" in d["error"] for d in dead)
    redelivered = health["counters"]["duplicates"] + len(dead) - 500
    print(f"after the crash {redelivered} redelivered events were recognised; {len(dead)} copies refused")
    assert redelivered >= 0


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_state_and_model_survive_a_restart(settings_for, start_worker, tmp_path, store):
    # memory:// comes back from the changelogs alone; rocksdb:// (production) from its files.
    settings = settings_for(k=3, seed_users=9, store=store, data_dir=str(tmp_path / "rocks"))
    events, label_of = news_reviews()
    produce(settings, settings.topic_reviews, events)
    worker = start_worker(settings)
    worker.wait_until(lambda h: h["counters"]["applied"] == len(events), 120, "the reviews")
    # Sizes come from the census, sent every couple of seconds (stream/worker/sizes.py).
    eventually(lambda: worker.get("/segments"), lambda r: sum(s["size"] for s in r[1]["segments"]) == len(label_of), 60)
    time.sleep(1.0)  # > model_publish_interval_s
    before_users = {u: worker.get(f"/users/{u}")[1] for u in label_of}
    before_segments = worker.get("/segments")[1]
    worker.stop()  # graceful: commit offsets, flush, publish the model

    worker = start_worker(settings)
    after_segments = worker.get("/segments")[1]
    assert after_segments == before_segments
    for user, state in before_users.items():
        assert worker.get(f"/users/{user}")[1] == state
    # Nothing is re-applied after the restart, and new events build on the restored state.
    user = "tech-reader-0"
    produce(settings, settings.topic_reviews, [(user, review(user, 50, "New laptop chips double battery life."))])
    worker.wait_until(lambda h: h["counters"]["applied"] == 1, 60, "the new review")
    assert worker.get(f"/users/{user}")[1]["reviews"] == before_users[user]["reviews"] + 1
    assert worker.health()["counters"]["duplicates"] == 0
    assert drain(settings, settings.topic_dead_letters, quiet_s=0.5) == []
