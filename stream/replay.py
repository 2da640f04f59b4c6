"""Replay and backfill: where to start and where the replay ends, read from Kafka.

``segstream replay`` picks start offsets for every input partition (the beginning, the first
record at or after a *broker* timestamp, or explicit offsets), records the end offsets as the
replay's end, and runs a worker that seeks its input partitions to the start when it first gets
them (stream/worker/consumer_patch.py), labels events below the end ``"mode": "replay"`` and
goes on live after (stream/core/replay_tracker.py). (Moving the group's committed offsets
instead is refused by Kafka while the group has members, and silently ignored by Tansu, which
keeps a stopped member.) Exactly-once per user makes a replay on top of the current state safe:
events already applied are recognised and skipped.

A fresh replay is a new deployment beside the live one: its own app id (tables), model topics
and, unless it publishes to live, output topics, all named after its app id, so the live
deployment's subscribers keep what they hold until someone moves them over.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, TopicPartition

from stream.config import ENV_PREFIX, Settings
from stream.core.replay_tracker import Partition
from stream.kafka import cluster_config, confirmed_end_offsets, consumer

# What a fresh replay names after its app id: model topics always, output topics unless it
# publishes to live; setting -> suffix.
MODEL_TOPICS = {"topic_model": "model", "topic_model_updates": "model-updates"}
OUTPUT_TOPICS = {"topic_changes": "changes", "topic_membership": "membership", "topic_dead_letters": "dead-letters"}
# Broker timestamps are looked up record by record; this bounds the wait for one.
RECORD_WAIT_S = 5.0
# (offset, broker timestamp in ms) of the first record at or after an offset; None: none before the end.
RecordAt = Callable[[int], "tuple[int, int] | None"]


def fresh_settings(settings: Settings, stamp: str, publish_to_live: bool) -> Settings:
    """The settings of a fresh replay: app id ``APP_ID-replay-STAMP``, and topics named after it."""
    app_id = f"{settings.app_id}-replay-{stamp}"
    named = MODEL_TOPICS if publish_to_live else MODEL_TOPICS | OUTPUT_TOPICS
    own = {name: f"{app_id}-{suffix}" for name, suffix in named.items()}
    return dataclasses.replace(settings, app_id=app_id, **own)


def live_instructions(settings: Settings) -> list[str]:
    """How to run live workers, and subscribers, on what a fresh replay with ``settings`` builds:
    the exact commands, and the environment variables that do the same."""
    own = ["app_id", *MODEL_TOPICS, *OUTPUT_TOPICS]
    flags = [f"--{name.replace('_', '-')}={getattr(settings, name)}" for name in ["bootstrap", *own]]
    env = [f"{ENV_PREFIX}{name.upper()}={getattr(settings, name)}" for name in ["bootstrap", *own]]
    watch = [f"--bootstrap={settings.bootstrap}", f"--topic-changes={settings.topic_changes}",
             f"--topic-membership={settings.topic_membership}", "--from-beginning"]
    return [
        "live workers on this result (with the same other settings as this replay; this process goes on live "
        "once caught up and may stay as one of them):",
        "  " + shlex.join(["segstream", "worker", *flags]),
        "  or with environment variables: " + shlex.join(env) + " segstream worker",
        "subscribers of this result:",
        "  " + shlex.join(["segstream", "watch", *watch]),
    ]


def parse_offsets(spec: str) -> dict[Partition, int]:
    """``topic:partition:offset[,...]`` as given on the command line."""
    offsets: dict[Partition, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        topic, partition, offset = part.rsplit(":", 2)
        if not (topic and partition.isdigit() and offset.isdigit()):
            raise ValueError(f"not TOPIC:PARTITION:OFFSET with a partition and offset >= 0: {part!r}")
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
    probe = consumer(cluster_config(settings), f"segstream-replay-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        low_high = _watermarks(probe, settings.input_topics)
        end = dict(confirmed_end_offsets(cluster_config(settings), {tp: high for tp, (_, high) in low_high.items()}))
        start = {tp: low for tp, (low, _) in low_high.items()}
        if from_timestamp_ms is not None:
            start = _offsets_for_time(probe, from_timestamp_ms, start, end)
        unknown = set(explicit or {}) - set(start)
        if unknown:
            raise SystemExit(f"not input partitions of this deployment: {sorted(unknown)}")
        start.update(explicit or {})
    finally:
        probe.close()
    return start, end


def _offsets_for_time(
    probe: Consumer, ts_ms: int, low: dict[Partition, int], end: dict[Partition, int]
) -> dict[Partition, int]:
    """Per partition, the first offset whose record's broker timestamp is >= ``ts_ms``: the
    broker's answer, checked against the records themselves (Tansu answers 0 for a partition
    whose records are all older) and searched for when wrong."""
    asked = [TopicPartition(t, p, ts_ms) for t, p in low]
    answers = {(tp.topic, tp.partition): tp.offset for tp in probe.offsets_for_times(asked, timeout=10)}
    start = {}
    for tp, answer in answers.items():
        answered = end[tp] if answer < 0 else min(max(answer, low[tp]), end[tp])
        start[tp] = verified_start(ts_ms, low[tp], end[tp], answered, _record_reader(probe, tp, end[tp]))
    return start


def verified_start(ts_ms: int, low: int, end: int, answered: int, record_at: RecordAt) -> int:
    """``answered`` if it is the first offset in [low, end] whose record is at or after
    ``ts_ms`` (the record there is not older, the one before it is), else that offset, found by
    binary search (broker timestamps rising with offsets, as the log append time does)."""
    found = record_at(answered)
    if found is not None and found[1] < ts_ms:
        return first_offset_at(ts_ms, found[0] + 1, end, record_at)
    before = record_at(answered - 1) if answered > low else None
    if before is not None and before[0] < answered and before[1] >= ts_ms:
        return first_offset_at(ts_ms, low, answered - 1, record_at)
    return answered


def first_offset_at(ts_ms: int, low: int, high: int, record_at: RecordAt) -> int:
    """The smallest offset in [low, high] from which the first record (if any before the
    end) has a broker timestamp >= ``ts_ms``."""
    while low < high:
        middle = (low + high) // 2
        found = record_at(middle)
        if found is None or found[1] >= ts_ms:
            high = middle
        else:
            low = found[0] + 1
    return low


def _record_reader(probe: Consumer, tp: Partition, end: int) -> RecordAt:
    """``record_at`` for one partition, reading with ``probe``."""

    def record_at(offset: int) -> tuple[int, int] | None:
        if offset >= end:
            return None
        probe.assign([TopicPartition(*tp, offset)])
        deadline = time.monotonic() + RECORD_WAIT_S
        while time.monotonic() < deadline:
            msg = probe.poll(0.1)
            if msg is None or msg.error() or (msg.topic(), msg.partition()) != tp or msg.offset() < offset:
                continue  # nothing yet, or left over from the previous position
            return (msg.offset(), msg.timestamp()[1]) if msg.offset() < end else None
        return None

    return record_at


def catalogue_to_read(settings: Settings) -> dict[Partition, int]:
    """End offsets of the items partitions this app id has not read to the end yet: a fresh
    replay builds its catalogue first, or behaviours would wait for items it already has."""
    probe = consumer(cluster_config(settings), settings.app_id, **{"enable.auto.commit": False})
    try:
        reported = {tp: high for tp, (_, high) in _watermarks(probe, [settings.topic_items]).items()}
        asked = [TopicPartition(*tp) for tp in reported]
        committed = {(tp.topic, tp.partition): tp.offset for tp in probe.committed(asked, timeout=10)}
    finally:
        probe.close()
    ends = confirmed_end_offsets(cluster_config(settings), reported)
    return {tp: end for tp, end in ends.items() if end > 0 and committed[tp] < end}
