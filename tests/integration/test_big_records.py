"""Forwarding keeps any record the input accepted: a review of megabytes that a producer's
partitioner put on another partition than its user's goes round through the repartition topic
and is applied, not dead-lettered."""

from __future__ import annotations

import itertools
import random
import time
import zlib

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from kafka_io import produce, records

from stream.kafka import FORWARD_MAX_BYTES, MAX_MESSAGE_BYTES, admin, cluster_config, ensure_topics, max_message_bytes, user_partition

NOW_MS = int(time.time() * 1000)
SIZES = (1_200_000, 3_000_000)
# confluent-kafka's default partitioner (CRC32 of the key), and a client limit that lets the records out.
CRC32_BIG = {"partitioner": "consistent_random", "message.max.bytes": 10_000_000}
WORDS = "plot acting score camera pacing ending cast scene dialogue light sound story twist".split()


def crc32_partition(user_id: str, partitions: int) -> int:
    return zlib.crc32(user_id.encode()) % partitions


def misplaced_users(partitions: int, count: int) -> list[str]:
    """User ids that CRC32 puts on another partition than murmur2 (segstream's) does."""
    candidates = (f"big-{n}" for n in itertools.count())
    misplaced = (u for u in candidates if crc32_partition(u, partitions) != user_partition(u, partitions))
    return list(itertools.islice(misplaced, count))


def review(user_id: str, size: int) -> dict:
    """A review whose text is ``size`` characters of words (compressible as prose is, not as one repeated phrase)."""
    rng = random.Random(size)
    text = " ".join(rng.choice(WORDS) for _ in range(size // 5))[:size]
    return {"event_id": f"big-{size}", "user_id": user_id, "item_id": "film", "text": text, "ts": NOW_MS}


def test_megabyte_reviews_on_another_partition_are_forwarded_and_applied(settings_for, start_worker):
    settings = settings_for()
    worker = start_worker(settings)
    users = misplaced_users(settings.partitions, len(SIZES))
    produce(settings, settings.topic_reviews, [(u, review(u, size)) for u, size in zip(users, SIZES)], **CRC32_BIG)
    landed = {msg.key().decode(): msg.partition() for msg in records(settings, settings.topic_reviews, quiet_s=0.5)}
    assert all(landed[u] != user_partition(u, settings.partitions) for u in users), landed
    health = worker.wait_until(lambda h: h["counters"]["applied"] + h["counters"]["dead_letters"] >= len(SIZES), 60, "both reviews")
    counters = health["counters"]
    assert (counters["applied"], counters["dead_letters"]) == (len(SIZES), 0)
    assert counters["forwarded"] >= len(SIZES)
    for user_id in users:
        assert worker.get(f"/users/{user_id}")[1]["reviews"] == 1


def set_limit(client: AdminClient, topic: str, limit: int) -> None:
    entry = ConfigEntry(MAX_MESSAGE_BYTES, str(limit), incremental_operation=AlterConfigOpType.SET)
    for future in client.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])]).values():
        future.result()


def test_the_repartition_topic_is_raised_to_take_what_the_inputs_take(settings_for):
    settings = settings_for()
    client = admin(cluster_config(settings))
    assert max_message_bytes(client, [settings.topic_repartition]) == {settings.topic_repartition: FORWARD_MAX_BYTES}
    set_limit(client, settings.topic_reviews, 80 << 20)
    set_limit(client, settings.topic_repartition, 1_000_000)  # as an earlier version left it, say
    ensure_topics(settings)
    assert max_message_bytes(client, [settings.topic_repartition]) == {settings.topic_repartition: 160 << 20}
