"""What the broker holds when a two-worker test finds something missing: for a user whose count
is wrong, where each of the user's events was produced and forwarded and every version of the
user's row in the users changelog; for a catalogue short of items, what the item-vectors topic
holds.

Only called when a check fails (the two-worker tests, ``segstream stress``), so that a rare loss
says which records went missing, on which partition, and whether the broker has them.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable

from typing import Any

from confluent_kafka import TopicPartition

from stream.config import Settings
from stream.contract.records import InvalidEvent, parse_ts
from stream.core.user_state import UserState, id_digest
from stream.kafka import USERS_TABLE, cluster_config, consumer, read_until_quiet
from stream.worker.repartition import SOURCE_HEADER


def records(settings: Settings, topic: str, quiet_s: float = 2.0) -> list[Any]:
    """Every message on ``topic`` as stored (confluent-kafka messages), once no new record
    arrived for ``quiet_s`` seconds."""
    reader = consumer(cluster_config(settings), f"segstream-records-{time.time_ns()}")
    partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
    reader.close()
    return list(read_until_quiet(cluster_config(settings), [TopicPartition(topic, p, 0) for p in partitions], quiet_s))


def _forwards(settings: Settings) -> dict[str, list[str]]:
    """First position "topic:partition:offset" -> where each forward of it landed."""
    out: dict[str, list[str]] = defaultdict(list)
    for msg in records(settings, settings.topic_repartition):
        source = dict(msg.headers() or []).get(SOURCE_HEADER, b"?").decode()
        out[source].append(f"r{msg.partition()}:{msg.offset()}")
    return out


def _committed(settings: Settings) -> dict[str, int]:
    """The worker group's committed offset of each input partition (read, not joined)."""
    reader = consumer(cluster_config(settings), settings.app_id, **{"enable.auto.commit": False})
    try:
        topics = (*settings.input_topics, settings.topic_repartition)
        wanted = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        return {f"{tp.topic}:{tp.partition}": tp.offset for tp in reader.committed(wanted, timeout=10)}
    finally:
        reader.close()


def _dead_letters(settings: Settings) -> dict[str, str]:
    """First position "topic:partition:offset" -> the error of its dead letter."""
    out = {}
    for msg in records(settings, settings.topic_dead_letters):
        letter = json.loads(msg.value())
        source = letter.get("source") or {}
        out[f"{source.get('topic')}:{source.get('partition')}:{source.get('offset')}"] = letter.get("error", "")[:160]
    return out


def _epoch_s(ts: object) -> float:
    """An event's time as the pipeline reads it; 0 for one it refuses."""
    try:
        return parse_ts(ts)
    except InvalidEvent:
        return 0.0


def item_vectors(settings: Settings) -> str:
    """Per partition of the item-vectors topic: records, offsets, offset gaps; distinct items."""
    found_records = records(settings, settings.topic_item_vectors)
    offsets: dict[int, list[int]] = defaultdict(list)
    for msg in found_records:
        offsets[msg.partition()].append(msg.offset())
    lines = [f"item-vectors holds {len({m.key() for m in found_records})} distinct items in {len(found_records)} records"]
    for partition, found in sorted(offsets.items()):
        gaps = [(a, b) for a, b in zip(found, found[1:]) if b != a + 1]
        lines.append(f"  p{partition}: {len(found)} records, offsets {found[0]}..{found[-1]}, gaps {gaps[:10]}")
    return "\n".join(lines)


def user_rows(settings: Settings, users: Iterable[str]) -> str:
    """For ``users``: each event's position (and forwards), each row version's applied count
    and high-water offsets, and the events the last version does not hold, with the dead
    letter's reason for those that became one."""
    users = set(users)
    events: dict[str, list[tuple[str, float, str]]] = defaultdict(list)  # user -> (event id, ts, position)
    for msg in records(settings, settings.topic_behaviors):
        event = json.loads(msg.value())
        if event.get("user_id") in users:
            position = f"{msg.topic()}:{msg.partition()}:{msg.offset()}"
            events[event["user_id"]].append((event["event_id"], _epoch_s(event.get("ts")), position))
    forwards = _forwards(settings)
    letters = _dead_letters(settings)
    versions: dict[str, list[str]] = defaultdict(list)
    last: dict[str, UserState] = {}
    for msg in records(settings, f"{settings.app_id}-{USERS_TABLE}-changelog"):
        user = msg.key().decode()
        if user in users and msg.value() is not None:
            state = last[user] = UserState.from_bytes(msg.value())
            written = time.strftime("%H:%M:%S", time.gmtime(msg.timestamp()[1] / 1000))
            versions[user].append(
                f"  c{msg.partition()}:{msg.offset()} at {written} applied={sum(state.actions.values())} offsets={state.offsets}"
            )
    lines = [f"committed input offsets of group {settings.app_id}: {_committed(settings)}"]
    for user in sorted(users):
        lines.append(f"user {user}: {len(events[user])} events, {len(versions[user])} row versions")
        lines += versions[user]
        state = last.get(user, UserState(user))
        for event_id, ts_s, position in events[user]:
            if id_digest(event_id) not in state.seen:
                beyond = " (beyond the dedup horizon: not known)" if ts_s < state.ref_ts - settings.dedup_horizon_s else ""
                letter = f", dead-lettered: {letters[position]}" if position in letters else ""
                lines.append(f"  missing {event_id}{beyond} at {position}, forwarded to {forwards.get(position, [])}{letter}")
    return "\n".join(lines)
