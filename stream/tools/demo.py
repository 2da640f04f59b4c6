"""``segstream demo``: embedded broker + one worker + the MovieLens-100k stream, then a summary
of the segments that formed, read back from the ``segment-changes`` topic."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import TopicPartition

from stream.config import load_settings
from stream.datasets import movielens
from stream.kafka import Cluster, cluster_config, ensure_topics, publish, read_until_quiet
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess


def final_memberships(cluster: Cluster, topic: str, partitions: int, quiet_s: float = 2.0) -> dict[str, dict]:
    """The last change event of every user: the topic from the start until it goes quiet."""
    latest: dict[str, dict] = {}
    for msg in read_until_quiet(cluster, [TopicPartition(topic, p, 0) for p in range(partitions)], quiet_s):
        change = json.loads(msg.value())
        latest[change["user_id"]] = change
    return latest


def describe_segments(portraits: list[dict], members: dict[str, int]) -> str:
    """Per segment, from the worker's own profiles (GET /segments/{id}): size, the genres that
    set it apart (with lift over everyone), its most distinctive movies; plus who its users
    are (MovieLens occupations, which the worker never saw)."""
    titles = {m.item_id: m.title for m in movielens.movies()}
    jobs_of = movielens.occupations()
    lines = []
    for p in portraits:
        seg = p["segment"]
        genres = ", ".join(f"{c['category']} {c['lift']:.1f}x" for c in p["top_categories"][:4])
        movies = "; ".join(titles.get(i["item_id"], i["item_id"]) for i in p["top_items"][:3])
        jobs = Counter(jobs_of.get(u, "?") for u, s in members.items() if s == seg)
        actions = ", ".join(f"{a} {share:.0%}" for a, share in p["actions"].items())
        lines.append(f"segment {seg}: {p['size']} users — {genres or '(no events counted here yet: its users acted before it formed)'}")
        lines.append(f"    distinctive movies: {movies}")
        lines.append(f"    actions: {actions}; occupations: {', '.join(f'{j} {n}' for j, n in jobs.most_common(3))}")
    return "\n".join(lines)


def run_demo(limit: int, k: int, keep_logs: Path) -> int:
    started = time.monotonic()
    keep_logs.mkdir(parents=True, exist_ok=True)
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
            health = worker.settled(quiet_s=3.0, timeout_s=600)
            print(
                f"model owner caught up {time.monotonic() - t0:.1f}s later: model v{health['model']['version']}, "
                f"{health['counters']['changes']:,} segment changes",
                flush=True,
            )
            latest = final_memberships(cluster_config(settings), settings.topic_changes, settings.partitions)
            members = {u: c["segment"] for u, c in latest.items()}
            portraits = [worker.get(f"/segments/{seg}")[1] for seg in range(k)]
            print(f"\n{len(members)} users in {k} segments (from segment-changes and GET /segments/{{id}}):\n")
            print(describe_segments(portraits, members))
        finally:
            worker.stop()
    print(f"\ndemo took {time.monotonic() - started:.0f}s", flush=True)
    return 0
