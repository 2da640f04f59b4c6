"""``segstream replay`` against the real broker and model: on top of the current state (every
event recognised as applied), fresh with only the final membership published to its own topics
or, told so, to the live ones (two replays give the same segments), live workers started on its
result with the command it prints, every event of histories longer than the dedup horizon
applied by a fresh replay that reads them out of order, a start from a broker timestamp, and a
worker refusing a model another encoder made."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from kafka_io import drain, produce

from models.encoder import Encoder
from models.fingerprint import EncoderFingerprint
from stream.config import export_to_env
from stream.datasets import movielens
from stream.factories import new_segmentation
from stream.kafka import cluster_config, ensure_topics, key_partition, read_last_value
from stream.replay import plan_offsets

ROOT = Path(__file__).resolve().parents[2]


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
    counters = replay.wait_until(lambda h: h["counters"]["duplicates"] >= n_events, 30, "every event seen")["counters"]
    # Records read again after a seek (stream/worker/gaps.py) that Faust then delivers too are
    # seen twice: recognised as applied both times.
    assert counters["applied"] == 0 and counters["duplicates"] <= n_events + counters["reread"]
    assert all(replay.get(f"/users/{u}")[1]["events"] == 4 for u in users)
    log = replay.log_path.read_text()
    assert f"replay: {n_events:,} of {n_events:,} events (100%), " in log and "{'events'" not in log

    # After catching up, the same worker goes on live.
    produce(settings, settings.topic_behaviors, [("u0", behavior("u0", 99, "1", 10))])
    replay.wait_until(lambda h: h["counters"]["applied"] == 1, 30, "a live event")
    assert replay.get("/users/u0")[1]["events"] == 5


def rows(settings, topic: str) -> list[str]:
    """Everything on ``topic``, in an order that does not depend on how partitions interleave."""
    return sorted(json.dumps(row, sort_keys=True) for row in drain(settings, topic))


def printed(worker, command: str) -> list[str]:
    """The flags of the ``segstream COMMAND ...`` line a fresh replay printed."""
    lines = worker.log_path.read_text().splitlines()
    line = next(line for line in lines if line.strip().startswith(f"segstream {command} "))
    return shlex.split(line)[2:]


def final_membership(events: list[tuple[str | None, dict]]) -> dict[str, int]:
    """User -> segment of the final membership events (reason replay), one per user."""
    replayed = [(user, change) for user, change in events if change["reason"] == "replay"]
    assert all(change["mode"] == "replay" for _, change in replayed)
    assert len(replayed) == len({user for user, _ in replayed})
    return {user: change["segment"] for user, change in replayed}


def test_fresh_replays_write_their_own_topics_unless_told_to_publish_to_live_and_agree(settings_for, start_worker):
    settings, users, n_events = applied_then_stopped(settings_for, start_worker)
    live = {topic: rows(settings, topic) for topic in (settings.topic_changes, settings.topic_membership)}

    finals = []
    for flags in ([], ["--publish-to-live"]):
        replay = start_worker(settings, ["replay", "--from-beginning", "--fresh", "--final-membership-only", *flags])
        health = replay.wait_until(lambda h: h["replay"]["finished"], 120, "the final membership")
        assert health["counters"]["applied"] == n_events and health["model"]["seeded"]
        replay.stop()
        fresh = build_settings_from(settings, printed(replay, "worker"))
        if flags:  # the live topics: what they held, and one final membership event per user
            published = drain(settings, settings.topic_changes)
            finals.append(final_membership(published))
            assert len(published) == len(live[settings.topic_changes]) + len(users)
            continue
        assert {topic: rows(settings, topic) for topic in live} == live  # the live topics are untouched
        own = drain(settings, fresh.topic_changes)
        assert len(own) == len(users)  # nothing but the final membership
        finals.append(final_membership(own))
        assert final_membership(drain(settings, fresh.topic_membership)) == finals[0]
        assert printed(replay, "watch") == [
            f"--bootstrap={settings.bootstrap}", f"--topic-changes={fresh.topic_changes}",
            f"--topic-membership={fresh.topic_membership}", "--from-beginning",
        ]
        model = json.loads(read_last_value(cluster_config(settings), fresh.topic_model))
        assert re.fullmatch("[0-9a-f]{16}", model["encoder"]["digest"])
        first_result = printed(replay, "worker")

    assert sorted(finals[0]) == sorted(users) and finals[0] == finals[1]
    groups = defaultdict(set)
    for user, segment in finals[0].items():
        groups[int(user[1:]) % 2].add(segment)
    assert groups[0].isdisjoint(groups[1]) and all(len(g) == 1 for g in groups.values())
    membership = {k: v["segment"] for k, v in drain(settings, settings.topic_membership)}  # latest per user
    assert membership == finals[1]
    live_on_result(start_worker, settings, first_result, finals[0])


def build_settings_from(settings, worker_flags: list[str]):
    """``settings`` with the values the printed worker command gives."""
    values = dict(flag.removeprefix("--").split("=", 1) for flag in worker_flags)
    return dataclasses.replace(settings, **{name.replace("-", "_"): value for name, value in values.items()})


def live_on_result(start_worker, settings, worker_flags: list[str], membership: dict[str, int]) -> None:
    """A live worker started with the printed command serves the replay's result and goes on from it."""
    worker = start_worker(settings, ["worker", *worker_flags])
    fresh = build_settings_from(settings, worker_flags)
    assert {u: worker.get(f"/users/{u}")[1]["segment"] for u in membership} == membership
    events = [("u0", behavior("u0", 99, "1", 10)), ("late", behavior("late", 0, "1", 10))]
    produce(settings, settings.topic_behaviors, events)
    worker.wait_until(lambda h: h["counters"]["applied"] == 2, 60, "live events")
    assert worker.get("/users/u0")[1]["events"] == 5
    assert worker.get("/users/late")[1]["segment"] is not None
    assert any(user == "late" for user, _ in drain(settings, fresh.topic_changes))
    worker.stop()


DAY_MS = 86_400_000
LIBRDKAFKA_DEFAULT = {"partitioner": "consistent_random"}  # CRC32 of the key: most users' events are forwarded
NULL_KEY_EVERY = 7


def long_histories(users: int = 100, each: int = 40, movies: int = 310) -> tuple[list[movielens.Movie], list[dict]]:
    """The first ``movies`` movies, and ``each`` ratings of them (spread over the user's span, in
    time order) by each of the first ``users`` users whose ratings of them span over 60 days."""
    by_user = defaultdict(list)
    for rating in movielens.ratings():
        if int(rating.item_id) <= movies:
            by_user[rating.user_id].append(rating)
    spans = [r for r in by_user.values() if len(r) >= each and r[-1].ts_ms - r[0].ts_ms > 60 * DAY_MS][:users]
    picked = sorted((r[i * (len(r) - 1) // (each - 1)] for r in spans for i in range(each)), key=lambda r: r.ts_ms)
    return [m for m in movielens.movies() if int(m.item_id) <= movies], [movielens.behavior_event(r) for r in picked]


def produce_as_time_goes(settings, worker, events: list[dict], days: int = 20) -> None:
    """Live: ``days`` of event time at a time (within the dedup horizon), some keys null and the
    rest partitioned as librdkafka does, each part applied before the next is sent."""
    sent = 0
    for _, part in itertools.groupby(events, key=lambda e: (e["ts"] - events[0]["ts"]) // (days * DAY_MS)):
        part = list(part)
        keyed = [(None if (sent + n) % NULL_KEY_EVERY == 0 else e["user_id"], e) for n, e in enumerate(part)]
        sent += produce(settings, settings.topic_behaviors, keyed, **LIBRDKAFKA_DEFAULT)
        worker.wait_until(lambda h, sent=sent: h["counters"]["applied"] + h["counters"]["dead_letters"] >= sent, 60, "the events")


def test_a_fresh_replay_applies_every_event_of_histories_longer_than_the_dedup_horizon(settings_for, start_worker):
    settings = settings_for(k=4, seed_users=40)
    movies, events = long_histories()
    sent = Counter(e["user_id"] for e in events)
    assert len(sent) == 100 and len(events) == 4_000
    worker = start_worker(settings)
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movies])
    worker.wait_until(lambda h: h["catalogue_items"] == len(movies), 120, "the catalogue")
    produce_as_time_goes(settings, worker, events)
    live = worker.health()["counters"]
    assert (live["applied"], live["dead_letters"]) == (len(events), 0) and live["forwarded"] > 0
    worker.stop()

    replay = start_worker(settings, ["replay", "--from-beginning", "--fresh", "--final-membership-only"])
    health = replay.wait_until(lambda h: h["replay"]["finished"], 120, "the final membership")  # after every forward
    counted = {u: sum(replay.get(f"/users/{u}")[1]["actions"].values()) for u in sent}
    dead = drain(settings, build_settings_from(settings, printed(replay, "worker")).topic_dead_letters)
    assert (health["counters"]["dead_letters"], [d["error"] for _, d in dead][:3]) == (0, [])
    assert health["counters"]["applied"] == len(events) and counted == dict(sent)
    assert health["counters"]["forwarded"] > 0


def test_a_replay_from_a_timestamp_never_starts_before_it(settings_for):
    settings = settings_for()
    one = [u for u in (f"n{n}" for n in range(200)) if key_partition(u.encode(), settings.partitions) == 0][:5]
    produce(settings, settings.topic_behaviors, [(f"o{n}", behavior(f"o{n}", 0, "1", 0)) for n in range(40)])
    time.sleep(0.2)
    cut = int(time.time() * 1000)
    time.sleep(0.2)
    # newer records on partition 0 only: Tansu answers offset 0 for the partitions of older records
    produce(settings, settings.topic_behaviors, [(u, behavior(u, 0, "1", 1)) for u in one])
    start, end = plan_offsets(settings, cut)
    newer = {tp: end[tp] - start[tp] for tp in start if tp[0] == settings.topic_behaviors}
    assert newer == {(settings.topic_behaviors, p): 5 if p == 0 else 0 for p in range(settings.partitions)}
    assert all(start[tp] == end[tp] == 0 for tp in start if tp[0] == settings.topic_reviews)


def test_a_worker_refuses_a_model_another_encoder_made(settings_for, encoder: Encoder):
    settings = settings_for(k=2, seed_users=10, encoder_precision="fp32")  # the fixture encoder's
    foreign = dataclasses.replace(settings, topic_model=f"{settings.app_id}-foreign-model")
    ensure_topics(foreign)
    theirs = EncoderFingerprint("0123456789abcdef", "other-model/model_quantized.onnx, int8, 384-d, 256 tokens")
    produce(settings, foreign.topic_model, [("model", new_segmentation(settings, encoder.dim, theirs).to_bytes())])
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "worker", f"--topic-model={foreign.topic_model}"],
        env={**os.environ, **export_to_env(settings), "HF_HUB_OFFLINE": "1"}, cwd=ROOT,
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"segstream worker: the model on '{foreign.topic_model}' was made with encoder {theirs}")
    assert f"this worker's encoder is {encoder.fingerprint}" in last
    assert "Traceback" not in done.stderr
