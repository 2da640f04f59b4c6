"""Events per second through one worker on the embedded broker, against the encoder alone.

    .venv/bin/python bench/worker_throughput.py [--reviews 2225] [--ratings 100000]

Reviews: BBC News articles, one per user (each needs the encoder). Behaviours: MovieLens-100k
ratings (no encoding: the item's vector). The baseline is the same encoder, in this process, on
the same review texts, measured in the same run; the ratio is what the worker keeps of it.
Prints the hardware it ran on. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from models.encoder import load_encoder
from models.text import clean_text
from stream import bbc, movielens
from stream.cli import publish
from stream.config import load_settings
from stream.kafka import EmbeddedBroker, ensure_topics, free_port
from stream.launcher import WorkerProcess


def hardware() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def through_worker(worker: WorkerProcess, settings, topic: str, events: list, label: str) -> float:
    before = worker.health()["counters"]["applied"]
    start = time.monotonic()
    publish(settings, topic, events, label)
    worker.wait_until(
        lambda h: bool(h) and h["counters"]["applied"] - before >= len(events), 1800, f"{label} to be applied"
    )
    return len(events) / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", type=int, default=2225)
    parser.add_argument("--ratings", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3, help="encoder-only timings (median)")
    args = parser.parse_args()

    articles = bbc.articles()[: args.reviews]
    reviews = [(d["user_id"], d) for d in (bbc.review_event(a, n) for n, a in enumerate(articles))]
    settings0 = load_settings()
    encoder = load_encoder(None, Path(settings0.model_cache), prefer_gpu=settings0.prefer_gpu)
    texts = [clean_text(a.text) for a in articles]
    encoder.encode(texts[:32])
    timings = []
    for _ in range(args.repeats):
        t0 = time.monotonic()
        encoder.encode(texts, batch_size=settings0.encode_batch_size)
        timings.append(time.monotonic() - t0)
    encoder_rate = len(texts) / statistics.median(timings)
    providers = ", ".join(encoder.providers)
    del encoder

    with tempfile.TemporaryDirectory() as logs, EmbeddedBroker(log_path=Path(logs) / "broker.log").running() as broker:
        settings = load_settings(
            bootstrap=broker.bootstrap, app_id="bench", store="memory://", web_port=free_port(),
            session_timeout_s=4.0, k=8,
        )
        ensure_topics(settings)
        worker = WorkerProcess(settings, Path(logs) / "worker.log").start()
        try:
            review_rate = through_worker(worker, settings, settings.topic_reviews, reviews, "reviews")
            movies = [(m.item_id, movielens.item_event(m)) for m in movielens.movies()]
            publish(settings, settings.topic_items, movies, "catalogue")
            worker.wait_until(lambda h: bool(h) and h["catalogue_items"] >= len(movies), 600, "the catalogue")
            ratings = [(r.user_id, movielens.behavior_event(r)) for r in movielens.ratings()[: args.ratings]]
            behavior_rate = through_worker(worker, settings, settings.topic_behaviors, ratings, "behaviours")
        finally:
            worker.stop()

    print(f"\nhardware: {hardware()}; encoder: {providers}")
    print(f"{'what':<44}{'per second':>12}{'ratio':>8}")
    print(f"{'encoder alone, BBC reviews (median of %d)' % args.repeats:<44}{encoder_rate:>12,.0f}{1.0:>8.2f}")
    print(f"{'worker end to end, BBC reviews':<44}{review_rate:>12,.0f}{review_rate / encoder_rate:>8.2f}")
    print(f"{'worker end to end, MovieLens behaviours':<44}{behavior_rate:>12,.0f}{'':>8}")


if __name__ == "__main__":
    main()
