"""``segstream demo``: embedded broker + one worker + the MovieLens-100k stream, then a summary
of the segments that formed: ``segstream segments``' table, with the users' occupations read
back from the ``segment-changes`` topic, and how well the live segments fit (stream/tools/live_fit.py)."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import TopicPartition

from stream.config import load_settings
from stream.datasets import movielens
from stream.factories import encoder_for
from stream.kafka import Cluster, cluster_config, ensure_topics, publish, read_until_quiet
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess
from stream.tools.live_fit import live_fit
from stream.tools.segments import TABLE_TOP, collect, console, segments_table


def final_memberships(cluster: Cluster, topic: str, partitions: int, quiet_s: float = 2.0) -> dict[str, dict]:
    """The last change event of every user: the topic from the start until it goes quiet."""
    latest: dict[str, dict] = {}
    for msg in read_until_quiet(cluster, [TopicPartition(topic, p, 0) for p in range(partitions)], quiet_s):
        change = json.loads(msg.value())
        latest[change["user_id"]] = change
    return latest


def occupations(members: dict[str, int]) -> dict[int, str]:
    """Who each segment's users are: their three commonest MovieLens occupations, which the
    worker never saw."""
    jobs_of = movielens.occupations()
    jobs: dict[int, Counter[str]] = {}
    for user, segment in members.items():
        jobs.setdefault(segment, Counter())[jobs_of.get(user, "?")] += 1
    return {s: ", ".join(f"{j} {n}" for j, n in c.most_common(3)) for s, c in jobs.items()}


def print_recommendations(worker: WorkerProcess, user_id: str, n: int = 3) -> None:
    """One user's first recommendations as the live recommender gets them, with their reasons."""
    status, answer = worker.get(f"/users/{user_id}/recommendations?k={n}")
    if status != 200:
        return
    print(f"\nrecommendations for user {user_id} (GET /users/{user_id}/recommendations, segment {answer['segment']}):")
    for item in answer["items"]:
        print(f"  {item['title'] or item['item_id']}: {item['reason']}")
    if not answer["items"]:
        print("  none yet: no segment has counted a behaviour (the model is not seeded)")


def serve_until_interrupted(worker: WorkerProcess) -> None:
    """Keep the broker and the worker up for the live page until Ctrl-C (or the worker exits).
    Ctrl-C reaches the broker too, which stops at once: the worker, which would wait for it to
    shut down gracefully, is killed (the demo keeps nothing)."""
    print(f"\nlive page: {worker.url}/ (broker and worker stay up; Ctrl-C stops them)", flush=True)
    try:
        while worker.process is not None and worker.process.poll() is None:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping the worker and the broker", flush=True)
        worker.stop(kill=True)


def prepare_encoder() -> None:
    """Build, export and calibrate the configured encoder before the worker starts, saying so:
    the first time (a minute or two for multilingual-e5-small) the worker would be silent."""
    settings = load_settings()
    print(
        f"encoder {settings.model_path or settings.model}: loading (built and exported once into "
        f"{settings.model_cache}; the first time takes a minute or two)",
        flush=True,
    )
    t0 = time.monotonic()
    encoder = encoder_for(settings)
    print(f"encoder ready in {time.monotonic() - t0:.1f}s ({encoder.precision}: {encoder.precision_reason})", flush=True)


def run_demo(limit: int, k: int, keep_logs: Path, serve: bool = False) -> int:
    started = time.monotonic()
    keep_logs.mkdir(parents=True, exist_ok=True)
    prepare_encoder()
    broker = EmbeddedBroker(log_path=keep_logs / "broker.log")
    with broker.running():
        settings = load_settings(
            bootstrap=broker.bootstrap,
            app_id="segstream-demo",
            store="memory://",
            web_port=free_port(),
            k=k,
            session_timeout_s=4.0,
        )
        ensure_topics(settings)
        worker = WorkerProcess(settings, keep_logs / "worker.log")
        print(f"broker {broker.bootstrap}; worker http {worker.url} (logs in {keep_logs})", flush=True)
        worker.start()
        try:
            items = [(m.item_id, movielens.item_event(m)) for m in movielens.movies()]
            publish(settings, settings.topic_items, items, "catalogue")
            t0 = time.monotonic()
            worker.wait_until(
                lambda h: bool(h) and h["catalogue_items"] >= len(items), 600, "the catalogue to be encoded"
            )
            encode_s = time.monotonic() - t0
            print(f"catalogue encoded: {len(items)} items in {encode_s:.1f}s", flush=True)

            rates = movielens.ratings()[: limit or None]
            behaviors = [(r.user_id, movielens.behavior_event(r)) for r in rates]
            t0 = time.monotonic()
            publish(settings, settings.topic_behaviors, behaviors, "ratings")
            health = worker.wait_until(
                lambda h: bool(h) and h["counters"]["applied"] + h["counters"]["duplicates"] >= len(behaviors),
                1800, "all ratings to be applied",
            )
            stream_s = time.monotonic() - t0
            assert health is not None
            print(
                f"worker applied {health['counters']['applied']:,} behaviour events in {stream_s:.1f}s "
                f"({health['counters']['applied'] / stream_s:,.0f} events/s end to end)",
                flush=True,
            )
            t0 = time.monotonic()
            # past the owner's idle time: its re-clustering of the whole load is in what the demo reads
            health = worker.settled(quiet_s=settings.seed_idle_s + 5.0, timeout_s=600)
            print(
                f"model settled {time.monotonic() - t0:.1f}s later (the owner caught up, then re-clustered after "
                f"{settings.seed_idle_s:g}s of quiet): model v{health['model']['version']}, "
                f"{health['counters']['changes']:,} segment changes",
                flush=True,
            )
            latest = final_memberships(cluster_config(settings), settings.topic_changes, settings.partitions)
            members = {u: c["segment"] for u, c in latest.items()}
            overview, portraits = collect(lambda path: worker.get(path)[1], TABLE_TOP)
            print(f"\n{len(members)} users in {k} segments (GET /segments/{{id}}; occupations from segment-changes):\n")
            console().print(segments_table(overview, portraits, ("occupations", occupations(members))))
            fit = live_fit(settings)
            print(fit.describe() if fit else "live segments: the model is not seeded", flush=True)
            print_recommendations(worker, rates[0].user_id)
            if serve:
                serve_until_interrupted(worker)
        finally:
            worker.stop()
    print(f"\ndemo took {time.monotonic() - started:.0f}s", flush=True)
    return 0
