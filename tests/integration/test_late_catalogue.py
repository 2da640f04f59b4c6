"""A late catalogue loses nothing: behaviours that arrive before their items apply when the
items do, without waiting for their user's next event; ``segstream load`` waits for the
catalogue before it publishes ratings."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from kafka_io import produce

from stream.config import export_to_env
from stream.datasets import movielens
from stream.tools.launcher import eventually


def test_behaviours_that_came_before_their_items_apply_when_the_items_come(settings_for, start_worker):
    settings = settings_for(k=4, seed_users=10)
    worker = start_worker(settings)
    ratings = movielens.ratings()[:600]
    produce(settings, settings.topic_behaviors, [(r.user_id, movielens.behavior_event(r)) for r in ratings])
    health = worker.wait_until(lambda h: h["counters"]["applied"] == len(ratings), 60, "the ratings")
    held = eventually(lambda: worker.health()["held_behaviours"], lambda h: h["behaviours"] == len(ratings), 10)
    users = {r.user_id for r in ratings}
    assert held["users"] == len(users) and held["items"] == len({r.item_id for r in ratings})

    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movielens.movies()])
    health = worker.wait_until(lambda h: h["held_behaviours"]["behaviours"] == 0, 180, "the held behaviours")
    assert health["counters"]["applied"] == len(ratings) and health["counters"]["dead_letters"] == 0
    rows = [worker.get(f"/users/{u}")[1] for u in sorted(users)]
    assert all(row["pending_unknown_items"] == 0 and row["has_vector"] for row in rows)
    segmented = eventually(lambda: [worker.get(f"/users/{u}")[1]["segment"] for u in users], lambda s: None not in s, 60)
    assert None not in segmented


def load(settings, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **export_to_env(settings)}
    command = [sys.executable, "-m", "stream.cli", "load", "movielens", *flags]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_load_waits_for_a_worker_to_encode_the_catalogue(settings_for, start_worker):
    settings = settings_for(k=4, seed_users=10)
    nobody = load(settings, "--limit", "10", "--wait-timeout", "3")
    assert nobody.returncode != 0 and "is a worker with that app id running" in nobody.stderr
    assert "Traceback" not in nobody.stderr

    worker = start_worker(settings)
    done = load(settings, "--limit", "2000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r"^catalogue encoded by a worker .* 1682/1682 ", done.stderr, re.MULTILINE), done.stderr
    health = worker.wait_until(lambda h: h["counters"]["applied"] == 2000, 120, "the ratings")
    assert eventually(lambda: worker.health()["held_behaviours"]["behaviours"], lambda n: n == 0, 10) == 0
    assert health["counters"]["dead_letters"] == 0
