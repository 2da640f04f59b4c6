"""Two worker processes on the real broker with the real model: partitions move when one joins
and when one leaves mid-stream, one model owner, nothing lost or applied twice, and the final
segmentation of a MovieLens load as good as one worker's."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

from kafka_io import produce

from stream.tools import loss_report
from stream.tools.broker import free_port
from stream.tools.evaluate.datasets import build_movielens
from stream.tools.evaluate.events_file import read_events, read_heldout
from stream.tools.evaluate.recommend import popularity_recommendations, recall_at_n
from stream.tools.evaluate.streaming import TextVectors, encode_items, stream_once
from stream.tools.launcher import eventually


def test_two_workers_share_the_load_with_one_model(settings_for, start_worker, encoder, tmp_path):
    settings = settings_for(seed_users=100)
    events_path, held_path = build_movielens(tmp_path)
    file = read_events(events_path)
    heldout = read_heldout(held_path)
    items = [json.loads(raw) for _, raw in file.items]
    behaviours = [json.loads(line.value) for line in file.stream]
    expected = Counter(b["user_id"] for b in behaviours)

    first = start_worker(settings)
    produce(settings, settings.topic_items, [(i["item_id"], i) for i in items])
    first.wait_until(lambda h: h["catalogue_items"] == len(items), 180, "the catalogue")
    half = len(behaviours) // 2
    produce(settings, settings.topic_behaviors, [(b["user_id"], b) for b in behaviours[:half]])

    # A second worker joins mid-stream: the input partitions are split between the two.
    second_settings = dataclasses.replace(settings, web_port=free_port(), data_dir=str(tmp_path / "second"))
    second = start_worker(second_settings)
    split = eventually(
        lambda: (first.health()["input_partitions"], second.health()["input_partitions"]),
        lambda parts: bool(parts[0]) and bool(parts[1]),
        60,
    )
    assert split[0] and split[1] and not set(split[0]) & set(split[1])
    assert len(split[0]) + len(split[1]) == 2 * settings.partitions
    produce(settings, settings.topic_behaviors, [(b["user_id"], b) for b in behaviours[half:]])

    # The first leaves mid-stream (graceful stop); the second takes every partition over.
    first.stop()
    second.wait_until(lambda h: len(h["input_partitions"]) == 2 * settings.partitions, 60, "all partitions")

    def applied_per_user() -> dict[str, int]:
        return {u: sum(second.get(f"/users/{u}")[1].get("actions", {}).values()) for u in expected}

    counts = eventually(applied_per_user, lambda c: c == dict(expected), 240)
    wrong = [u for u, n in expected.items() if counts[u] != n]
    assert not wrong, loss_report.user_rows(settings, wrong)  # every event applied exactly once, across the handovers

    health = second.health()
    assert health["model"]["owner"] and health["model"]["seeded"]
    segments = eventually(
        lambda: {u: second.get(f"/users/{u}")[1]["segment"] for u in expected},
        lambda s: None not in s.values(),
        60,
    )
    train: dict[str, list[str]] = {}
    for b in behaviours:
        train.setdefault(b["user_id"], []).append(b["item_id"])

    def recall(groups: dict[str, int]) -> float:
        recs, _ = popularity_recommendations(train, heldout, groups)
        return recall_at_n(recs, heldout)

    # One worker's code path over the same events (stream.core.local_run.LocalRun), same settings.
    vectors = TextVectors(encoder, settings.encode_batch_size)
    catalogue, _, _ = encode_items(file, vectors)
    one = stream_once(settings, file.stream, catalogue, vectors)
    one_worker = recall({u: s.segment for u, s in one.states.items() if s.segment is not None})
    two_workers = recall(segments)
    global_popularity = recall({})
    print(f"recall@10: two workers {two_workers:.4f}, one worker {one_worker:.4f}, global {global_popularity:.4f}")
    assert two_workers > global_popularity + 0.01
    assert abs(two_workers - one_worker) <= 0.01, (two_workers, one_worker)
