"""Bench section 2 (``--end-to-end``, minutes): one worker on the embedded broker.

Events per second through the worker: BBC reviews (each needs the encoder) and MovieLens
behaviours (no encoding: the item's vector), against the same encoder alone in this process.
Once the worker is idle again (the model owner has folded the backlog in, sweeps are done),
behaviours at half the measured behaviour rate for 20 s, in sessions like MovieLens's, with new
users' first events among them: the latency from producing an event to its change event
arriving at a consumer of the changes topic, p50 and p99.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_END, TopicPartition

from models.text import clean_text
from stream.config import Settings, load_settings
from stream.contract.records import ACTIONS
from stream.datasets import bbc, movielens
from stream.factories import encoder_for
from stream.kafka import cluster_config, consumer, ensure_topics, producer, publish
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) a process has used: in all, and in its main thread (the
    event loop), from /proc; empty where there is no /proc."""
    tick = os.sysconf("SC_CLK_TCK")

    def used(stat: Path) -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    try:
        return {"process": used(Path(f"/proc/{pid}/stat")), "main": used(Path(f"/proc/{pid}/task/{pid}/stat"))}
    except OSError:
        return {}


def _through_worker(worker: Any, settings: Any, topic: str, events: list, label: str) -> dict[str, float]:
    """Events per second through the worker, and its CPU microseconds per event (all threads,
    and the event loop's thread alone): the CPU figures do not depend on what else the machine
    runs, the rate does."""
    before = worker.health()["counters"]["applied"]
    cpu_before = cpu_seconds(worker.pid)
    start = time.monotonic()
    publish(settings, topic, events, label)
    worker.wait_until(
        lambda h: bool(h) and h["counters"]["applied"] - before >= len(events), 1800, f"{label} to be applied"
    )
    figures = {"per_s": len(events) / (time.monotonic() - start)}
    cpu_after = cpu_seconds(worker.pid)
    for part, seconds in cpu_after.items():
        figures[f"cpu_us_{part}"] = (seconds - cpu_before[part]) / len(events) * 1e6
    return figures


LATENCY_S = 20.0
# The load at half rate is shaped like the MovieLens replay the rate was measured on (~8 users
# in a batch of 256): sessions of SESSION events of one existing user. Every PROBE_EVERY-th
# event is a new user's first instead, which always gives a change event.
SESSION = 32
PROBE_EVERY = 100


def _latency_at_rate(
    settings: Settings, rate: float, seconds: float, users: list[str], items: list[str], first_ts_ms: int
) -> dict[str, Any]:
    """Behaviours produced at ``rate`` per second for ``seconds``: sessions of existing users
    acting on random items, and every PROBE_EVERY-th a new user's first event, which (the model
    being seeded) always gives a change event. Latency: from the produce call to the arrival at
    a consumer of the changes topic of the change event whose ``source`` is that event's
    (partition, offset), as the producer's delivery report gave it."""
    arrived: dict[tuple[int, int], float] = {}  # written by the reader thread
    produced: dict[tuple[int, int], float] = {}
    probes: list[tuple[int, int]] = []
    stop = threading.Event()
    reader = consumer(cluster_config(settings), f"bench-latency-{os.getpid()}", **{"enable.auto.commit": False})
    reader.assign([TopicPartition(settings.topic_changes, p, OFFSET_END) for p in range(settings.partitions)])

    def read_changes() -> None:
        while not stop.is_set():
            msg = reader.poll(0.05)
            if msg is None or msg.error():
                continue
            source = json.loads(msg.value()).get("source")
            if source and source["topic"] == settings.topic_behaviors:
                arrived[(source["partition"], source["offset"])] = time.monotonic()

    thread = threading.Thread(target=read_changes, daemon=True)
    thread.start()
    time.sleep(2.0)  # the reader resolves the end offsets before the first event
    out = producer(cluster_config(settings))
    out.list_topics(settings.topic_behaviors, timeout=10)  # connected before the clock starts
    rng = np.random.default_rng(0)
    total = int(rate * seconds)
    sessions = rng.choice(users, size=total // SESSION + 1)
    started = time.monotonic()
    for n in range(total):
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        probe = n % PROBE_EVERY == 0
        user = f"latency-probe-{n}" if probe else str(sessions[n // SESSION])
        doc = {
            "event_id": f"latency-{n}", "user_id": user, "item_id": items[rng.integers(len(items))],
            "action": ACTIONS[rng.integers(len(ACTIONS))], "ts": first_ts_ms + n,
        }
        sent_at = time.monotonic()

        def delivered(err: Any, msg: Any, at: float = sent_at, probe: bool = probe) -> None:
            if err is None:
                produced[(msg.partition(), msg.offset())] = at
                if probe:
                    probes.append((msg.partition(), msg.offset()))

        out.produce(settings.topic_behaviors, key=user.encode(), value=json.dumps(doc).encode(), on_delivery=delivered)
        out.poll(0)
    achieved = total / (time.monotonic() - started)
    out.flush(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(k in arrived for k in probes):
        time.sleep(0.2)
    stop.set()
    thread.join()
    reader.close()
    latencies_ms = np.array([(arrived[k] - t) * 1e3 for k, t in produced.items() if k in arrived])
    return {
        "target_per_s": rate,
        "achieved_per_s": achieved,
        "seconds": seconds,
        "events": total,
        "probes": len(probes),
        "probes_changed": sum(k in arrived for k in probes),
        "matched": len(latencies_ms),
        "p50_ms": float(np.percentile(latencies_ms, 50)) if len(latencies_ms) else None,
        "p99_ms": float(np.percentile(latencies_ms, 99)) if len(latencies_ms) else None,
        "max_ms": float(latencies_ms.max()) if len(latencies_ms) else None,
    }


def end_to_end_section(n_reviews: int, n_ratings: int, repeats: int) -> dict[str, Any]:
    """Reviews/s and behaviours/s through one worker on the embedded broker, against the
    same encoder (settings' precision and threads) alone in this process on the same texts."""
    articles = bbc.articles()[:n_reviews]
    reviews = [(d["user_id"], d) for d in (bbc.review_event(a, n) for n, a in enumerate(articles))]
    settings0 = load_settings()
    encoder = encoder_for(settings0)
    texts = [clean_text(a.text) for a in articles]
    encoder.encode(texts[:32])
    timings = []
    for _ in range(repeats):
        started = time.monotonic()
        encoder.encode(texts, batch_size=settings0.encode_batch_size)
        timings.append(time.monotonic() - started)
    encoder_rate = len(texts) / statistics.median(timings)
    providers, precision = list(encoder.providers), encoder.precision
    del encoder

    with tempfile.TemporaryDirectory() as logs, EmbeddedBroker(log_path=Path(logs) / "broker.log").running() as broker:
        settings = load_settings(
            bootstrap=broker.bootstrap, app_id="bench", store="memory://", web_port=free_port(),
            session_timeout_s=4.0, k=8,
        )
        ensure_topics(settings)
        worker = WorkerProcess(settings, Path(logs) / "worker.log").start()
        try:
            review = _through_worker(worker, settings, settings.topic_reviews, reviews, "reviews")
            movies = [(m.item_id, movielens.item_event(m)) for m in movielens.movies()]
            publish(settings, settings.topic_items, movies, "catalogue")
            worker.wait_until(lambda h: bool(h) and h["catalogue_items"] >= len(movies), 600, "the catalogue")
            ratings = [(r.user_id, movielens.behavior_event(r)) for r in movielens.ratings()[:n_ratings]]
            behavior = _through_worker(worker, settings, settings.topic_behaviors, ratings, "behaviours")
            idle_since = time.monotonic()  # the throughput phase leaves the owner updates to fold in
            worker.settled(quiet_s=1.0, timeout_s=300)
            settled_s = time.monotonic() - idle_since
            latency = _latency_at_rate(
                settings, behavior["per_s"] / 2, LATENCY_S, sorted({u for u, _ in ratings}),
                [item_id for item_id, _ in movies], ratings[-1][1]["ts"] + 1,
            )
        finally:
            worker.stop()
    return {
        "precision": precision,
        "providers": providers,
        "repeats": repeats,
        "reviews": len(reviews),
        "behaviours": len(ratings),
        "encoder_reviews_per_s": encoder_rate,
        "worker_reviews_per_s": review["per_s"],
        "worker_behaviours_per_s": behavior["per_s"],
        "worker_behaviour_cpu_us": {k.removeprefix("cpu_us_"): v for k, v in behavior.items() if k.startswith("cpu_us_")},
        "settled_s": settled_s,
        "latency_at_half_load": latency,
    }


def print_end_to_end_section(result: dict[str, Any]) -> None:
    print(
        f"\n2. End to end: one worker on the embedded broker; encoder {result['precision']} on "
        f"{', '.join(result['providers'])}"
    )
    print(f"  {'what':<46}{'per second':>12}{'ratio':>8}")
    rate = result["encoder_reviews_per_s"]
    label = f"encoder alone, BBC reviews (median of {result['repeats']})"
    print(f"  {label:<46}{rate:>12,.0f}{1.0:>8.2f}")
    worker_rate = result["worker_reviews_per_s"]
    label = f"worker, {result['reviews']} BBC reviews"
    print(f"  {label:<46}{worker_rate:>12,.0f}{worker_rate / rate:>8.2f}")
    label = f"worker, {result['behaviours']} MovieLens behaviours"
    print(f"  {label:<46}{result['worker_behaviours_per_s']:>12,.0f}")
    cpu = result["worker_behaviour_cpu_us"]
    if cpu:
        print(
            f"  the worker's CPU per behaviour: {cpu['process']:.0f} us in all, {cpu['main']:.0f} us in its "
            f"event loop's thread (one core at that cost: {1e6 / cpu['main']:,.0f} behaviours/s)"
        )
    lat = result["latency_at_half_load"]
    print(
        f"\n  the worker was idle {result['settled_s']:.1f} s after the last behaviour was applied (model updates "
        f"folded in, sweeps done); then half the behaviour rate: {lat['events']:,} behaviours at {lat['achieved_per_s']:,.0f}/s (target "
        f"{lat['target_per_s']:,.0f}/s) for {lat['seconds']:g} s, sessions of {SESSION} events of one user, "
        f"every {PROBE_EVERY}th event a new user's first; produce -> change event at a consumer of the "
        f"changes topic, {lat['matched']:,} matched by source offset ({lat['probes_changed']:,} of "
        f"{lat['probes']:,} new users):"
    )
    if lat["matched"]:
        print(f"  p50 {lat['p50_ms']:,.0f} ms, p99 {lat['p99_ms']:,.0f} ms, max {lat['max_ms']:,.0f} ms")
