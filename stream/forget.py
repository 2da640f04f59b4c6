"""``segstream forget``: requests to forget users, published where the workers read them.

A request is a record on ``{app_id}-forget`` keyed by the user id as stored (the pseudonym when
``SEGSTREAM_USER_ID_SALT`` is set), on the partition of the users table that holds the user; the
worker holding that partition applies it (stream/worker/forget.py). Going through Kafka rather
than a worker's HTTP API works with any number of workers, needs only the broker to be
reachable from where the command runs, and keeps a request until a worker has applied it
(one started later included).
"""

from __future__ import annotations

from collections.abc import Iterable

from stream.config import Settings
from stream.contract.records import pseudonym
from stream.kafka import cluster_config, ensure_topics, producer, user_partition


def request_forget(settings: Settings, user_ids: Iterable[str], timeout_s: float = 30.0) -> list[str]:
    """Publish one request per user and wait until the broker has them all; the ids as stored."""
    ensure_topics(settings)
    keys = list(dict.fromkeys(pseudonym(user_id, settings.user_id_salt) for user_id in user_ids))
    out = producer(cluster_config(settings))
    for key in keys:
        out.produce(settings.topic_forget, key=key.encode(), value=b"{}", partition=user_partition(key, settings.partitions))
    left = out.flush(timeout_s)
    if left:
        raise RuntimeError(f"{left} forget requests were not delivered to {settings.bootstrap} within {timeout_s:g} s")
    return keys
