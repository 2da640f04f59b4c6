"""Replay and backfill: where to start and where the replay ends, read from Kafka.

``segstream replay`` picks start offsets for every input partition (the beginning, the first
record at or after a *broker* timestamp, or explicit offsets), records the end offsets as the
replay's end, and runs a worker that seeks its input partitions to the start when it first gets
them (stream/worker/consumer_patch.py), labels events below the end ``"mode": "replay"`` and
goes on live after (stream/core/replay_tracker.py). (Moving the group's committed offsets
instead is refused by Kafka while the group has members, and silently ignored by Tansu, which
keeps a stopped member.) Exactly-once per user makes a replay on top of the current state safe:
events already applied are recognised and skipped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from stream.config import Settings
from stream.core.replay_tracker import Partition
from stream.kafka import confirmed_end_offsets, consumer


def parse_offsets(spec: str) -> dict[Partition, int]:
    """``topic:partition:offset[,...]`` as given on the command line."""
    offsets: dict[Partition, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        topic, partition, offset = part.rsplit(":", 2)
        offsets[(topic, int(partition))] = int(offset)
    return offsets


def _watermarks(probe: Consumer, topics: Iterable[str]) -> dict[Partition, tuple[int, int]]:
    """(low, reported high) watermarks of every partition of ``topics``."""
    out: dict[Partition, tuple[int, int]] = {}
    for topic in topics:
        for p in sorted(probe.list_topics(topic, timeout=10).topics[topic].partitions):
            out[(topic, p)] = probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    return out


def plan_offsets(
    settings: Settings, from_timestamp_ms: int | None = None, explicit: dict[Partition, int] | None = None
) -> tuple[dict[Partition, int], dict[Partition, int]]:
    """(start, end) offsets of every input partition. Start: the beginning, the first record
    whose broker timestamp is >= ``from_timestamp_ms`` (the end where none is), or the
    ``explicit`` offsets (other partitions from their beginning). End: the confirmed end."""
    probe = consumer(settings.bootstrap, f"segstream-replay-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        low_high = _watermarks(probe, settings.input_topics)
        partitions = list(low_high)
        start = {tp: low for tp, (low, _) in low_high.items()}
        if from_timestamp_ms is not None:
            found = probe.offsets_for_times([TopicPartition(t, p, from_timestamp_ms) for t, p in partitions], timeout=10)
            for tp in found:
                start[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else low_high[(tp.topic, tp.partition)][1]
        unknown = set(explicit or {}) - set(partitions)
        if unknown:
            raise SystemExit(f"not input partitions of this deployment: {sorted(unknown)}")
        start.update(explicit or {})
    finally:
        probe.close()
    reported = {tp: high for tp, (_, high) in low_high.items()}
    return start, dict(confirmed_end_offsets(settings.bootstrap, reported))


def catalogue_to_read(settings: Settings) -> dict[Partition, int]:
    """End offsets of the items partitions this app id has not read to the end yet: a fresh
    replay builds its catalogue first, or behaviours would wait for items it already has."""
    probe = consumer(settings.bootstrap, settings.app_id, **{"enable.auto.commit": False})
    try:
        reported = {tp: high for tp, (_, high) in _watermarks(probe, [settings.topic_items]).items()}
        asked = [TopicPartition(*tp) for tp in reported]
        committed = {(tp.topic, tp.partition): tp.offset for tp in probe.committed(asked, timeout=10)}
    finally:
        probe.close()
    ends = confirmed_end_offsets(settings.bootstrap, reported)
    return {tp: end for tp, end in ends.items() if end > 0 and committed[tp] < end}
