"""``segstream load``: a sample data set published as contract events.

MovieLens: the catalogue first; then, unless told not to, the command waits until a worker has
encoded every item (it reads the catalogue table's changelog), so that ratings find their items;
then the ratings in time order. BBC News: each article as one user's review.
"""

from __future__ import annotations

import time
from collections.abc import Collection

from confluent_kafka import TopicPartition

from stream.config import Settings
from stream.datasets import bbc, movielens
from stream.kafka import cluster_config, consumer, ensure_topics, publish, wait_for_broker
from stream.progress import progress


def load(settings: Settings, dataset: str, limit: int, skip_items: bool, wait_s: float) -> int:
    """``wait_s``: how long to wait for the catalogue to be encoded (0: not at all)."""
    wait_for_broker(cluster_config(settings), settings.broker_wait_s)
    ensure_topics(settings)
    if dataset == "bbc":
        docs = [bbc.review_event(a, n) for n, a in enumerate(bbc.articles())][: limit or None]
        publish(settings, settings.topic_reviews, [(d["user_id"], d) for d in docs], "reviews")
        return 0
    items = [(m.item_id, movielens.item_event(m)) for m in movielens.movies()]
    if not skip_items:
        publish(settings, settings.topic_items, items, "items")
        if wait_s:
            wait_for_catalogue(settings, {item_id for item_id, _ in items}, wait_s)
    behaviors = [(r.user_id, movielens.behavior_event(r)) for r in movielens.ratings()[: limit or None]]
    publish(settings, settings.topic_behaviors, behaviors, "behaviors")
    return 0


def wait_for_catalogue(settings: Settings, item_ids: Collection[str], timeout_s: float) -> None:
    """Until a worker of ``settings.app_id`` has every one of ``item_ids`` in its catalogue table;
    SystemExit saying what to do when that takes longer than ``timeout_s``."""
    topic = settings.topic_item_vectors
    missing = {item_id.encode() for item_id in item_ids}
    reader = consumer(cluster_config(settings), f"segstream-load-{time.time_ns()}", **{"enable.auto.commit": False})
    deadline = time.monotonic() + timeout_s
    try:
        while not _assign_all(reader, topic):
            if time.monotonic() > deadline:
                _give_up(settings, timeout_s, len(item_ids), len(missing))
            time.sleep(0.5)
        with progress("catalogue encoded by a worker", len(missing)) as update:
            while missing:
                if time.monotonic() > deadline:
                    _give_up(settings, timeout_s, len(item_ids), len(missing))
                msg = reader.poll(0.2)
                if msg is not None and not msg.error():
                    missing.discard(msg.key())
                update(len(item_ids) - len(missing))
    finally:
        reader.close()


def _assign_all(reader: object, topic: str) -> bool:
    """Read every partition of ``topic`` from its start; False while the topic does not exist."""
    meta = reader.list_topics(topic, timeout=5).topics.get(topic)  # type: ignore[attr-defined]
    if meta is None or meta.error is not None or not meta.partitions:
        return False
    reader.assign([TopicPartition(topic, p, 0) for p in meta.partitions])  # type: ignore[attr-defined]
    return True


def _give_up(settings: Settings, timeout_s: float, total: int, missing: int) -> None:
    raise SystemExit(
        f"\nsegstream load: after {timeout_s:g} s, {missing:,} of {total:,} items are not in the catalogue of app id "
        f"{settings.app_id!r}: is a worker with that app id running against {settings.bootstrap}? "
        "Start one (segstream worker), or publish without waiting: --no-wait"
    )
