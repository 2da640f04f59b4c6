"""Producing and reading test topics with confluent-kafka (what any client would do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

from confluent_kafka import TopicPartition

from stream.config import Settings, export_to_env
from stream.kafka import cluster_config, consumer, producer
from stream.tools.loss_report import records


def produce(settings: Settings, topic: str, records: Iterable[tuple[str | None, Any]], **config: Any) -> int:
    """Send (key, value) pairs; dict values become JSON, bytes go as they are; ``config``: more
    producer settings (e.g. ``message.max.bytes`` for big records)."""
    out = producer(cluster_config(settings), **config)
    n = 0
    for key, value in records:
        raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
        out.produce(topic, key=None if key is None else key.encode(), value=raw)
        n += 1
    assert out.flush(30) == 0
    return n


def read(settings: Settings, topic: str, count: int, timeout_s: float = 60.0) -> list[tuple[str | None, Any]]:
    """Read ``topic`` from the start until ``count`` records arrived (JSON values decoded)."""
    reader = consumer(cluster_config(settings), f"test-reader-{time.time_ns()}", **{"enable.auto.commit": False})
    meta = reader.list_topics(topic, timeout=10).topics[topic]
    reader.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    out: list[tuple[str | None, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is None or msg.error():
                continue
            key = None if msg.key() is None else msg.key().decode()
            out.append((key, json.loads(msg.value())))
    finally:
        reader.close()
    return out


def drain(settings: Settings, topic: str, quiet_s: float = 2.0) -> list[tuple[str | None, Any]]:
    """Everything on ``topic`` once no new record arrived for ``quiet_s`` seconds (JSON values decoded)."""
    return [
        (None if msg.key() is None else msg.key().decode(), json.loads(msg.value()))
        for msg in records(settings, topic, quiet_s)
    ]



def load_movielens_slice(settings: Settings, worker: Any, movies: int = 80, ratings: int = 1500) -> list:
    """The first ``movies`` movies and ``ratings`` of their ratings into a running worker, then
    wait until it has applied them and settled; the ratings sent."""
    from stream.datasets import movielens

    catalogue = movielens.movies()[:movies]
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in catalogue])
    worker.wait_until(lambda h: h["catalogue_items"] == movies, 120, "the catalogue")
    sent = [r for r in movielens.ratings() if int(r.item_id) <= movies][:ratings]
    produce(settings, settings.topic_behaviors, [(r.user_id, movielens.behavior_event(r)) for r in sent])
    worker.wait_until(lambda h: h["counters"]["applied"] >= len(sent), 180, "the ratings")
    worker.settled(quiet_s=2.0, timeout_s=120)
    return sent


def cli_env(settings: Settings) -> dict[str, str]:
    """This environment with ``settings`` as the only SEGSTREAM_* variables."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SEGSTREAM_")}, **export_to_env(settings)}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    """``segstream ARGS`` with ``settings`` as the only SEGSTREAM_* variables."""
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args], env=cli_env(settings), capture_output=True, text=True, timeout=60
    )
