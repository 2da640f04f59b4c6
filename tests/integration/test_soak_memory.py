"""The soak's machinery (`segstream bench --soak`) against the real broker and a worker process
with the RocksDB store operators run: every event produced is applied and RSS is sampled."""

from __future__ import annotations

from kafka_io import produce

from stream.datasets import movielens
from stream.tools.bench.soak import run_soak


def test_half_a_minute_of_soak_applies_every_event_and_samples_the_workers_rss(settings_for, start_worker):
    settings = settings_for(store="rocksdb://")
    worker = start_worker(settings)
    movies = movielens.movies()[:300]
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movies])
    worker.wait_until(lambda h: h["catalogue_items"] == len(movies), 60, "the catalogue")

    result = run_soak(settings, worker, seconds=30, rate=100, users=500, items=[m.item_id for m in movies], every_s=2)

    assert 2_900 <= result["produced"] <= 3_000
    assert result["applied"] == result["produced"]
    assert (result["dead_letters"], result["held_behaviours"]) == (0, 0)
    samples = result["samples"]
    assert len(samples) >= 14 and all(s["rss_mb"] > 50 for s in samples)
    assert samples[-1]["applied"] == result["produced"]
    rss = result["rss"]
    assert rss["start_mb"] == samples[0]["rss_mb"] and rss["end_mb"] == samples[-1]["rss_mb"]
    assert rss["second_half_min_mb"] <= rss["second_half_mean_mb"] <= rss["second_half_max_mb"]
