"""Subscribing to segment changes: everyone's current segment, then every change as it happens.

A subscriber that starts from the beginning records the end offsets of the changes topic, reads
the compacted membership topic (each user's latest change event) as a snapshot, then follows the
changes topic from the recorded offsets, so no change made meanwhile is missed. Changes the
snapshot already held may come again: for each user, the latest event wins.

In a consumer group the snapshot's progress is committed too (offsets of the membership topic,
committed by the group's consumer without joining for it), and the changes' start offsets only
once the snapshot is read. So the group's commits say where it is: none (a first start),
membership only (within the snapshot: it goes on from there, then follows the changes from
their ends when it goes on; every change made meanwhile is in the membership rows after its
position), or changes (past the snapshot: it follows the changes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from confluent_kafka import KafkaException, Message, TopicPartition

from stream.config import Settings
from stream.contract.changes import SegmentChange
from stream.contract.records import InvalidEvent, Source
from stream.kafka import confirmed_end_offsets, consumer, read_until_quiet
from stream.security import librdkafka_security

__all__ = ["SegmentChange", "Source", "Subscriber", "subscribe"]

log = logging.getLogger(__name__)

_DEFAULTS = Settings()
# The snapshot ends once every membership partition delivered its reported end; this only bounds
# a partition whose end record never comes (e.g. a transaction marker on Apache Kafka).
SNAPSHOT_QUIET_S = 1.0
# In a group, the snapshot's progress is committed this often while it is read (and when it ends).
SNAPSHOT_COMMIT_EVERY_S = 5.0


class Subscriber:
    """Segment change events as an iterator; ``close()`` (or leaving ``with``) ends it.

    - ``from_beginning``: first everyone's current segment (``snapshot=True``), then every change;
      otherwise only changes published after the subscriber was created.
    - ``group_id``: offsets are committed in this consumer group, so a subscriber created again
      with it resumes after the last event it handed out, within the snapshot or after it
      (``from_beginning`` then matters only on the group's first start). ``close()`` commits;
      after a crash the events handed out since the last commit (5 s) come again. Without a
      group nothing is committed.
    - ``segments``: only events whose ``segment`` or ``previous_segment`` is one of these (a user
      leaving a watched segment matters too).
    - ``stop_after_idle_s``: the iteration ends once nothing arrived for that long.
    - ``config``: more librdkafka consumer properties, for every consumer the subscriber opens:
      how to reach a secured cluster (``security.protocol``, ``sasl.*``, ``ssl.*``) or tuning.
      The properties its reading depends on (group, commits, where to start) stay its own.

    Records that are not valid change events are skipped with a warning: they were written by
    some other producer, and raising would stop every subscriber at the same offset for good.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        topic_changes: str = _DEFAULTS.topic_changes,
        topic_membership: str = _DEFAULTS.topic_membership,
        group_id: str | None = None,
        from_beginning: bool = False,
        segments: Collection[int] | None = None,
        poll_timeout_s: float = 0.2,
        stop_after_idle_s: float | None = None,
        session_timeout_s: float = _DEFAULTS.session_timeout_s,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.cluster = {**(config or {}), "bootstrap.servers": bootstrap}
        self.topic_changes, self.topic_membership = topic_changes, topic_membership
        self.group_id = group_id
        self.segments = None if segments is None else frozenset(segments)
        self.poll_timeout_s, self.stop_after_idle_s = poll_timeout_s, stop_after_idle_s
        own: dict[str, Any] = {
            "enable.auto.commit": group_id is not None,
            # stored by hand once an event was handed out, so a commit never skips one
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
        }
        if group_id is not None:
            # Tansu answers a group join after half the session timeout.
            own["session.timeout.ms"] = int(session_timeout_s * 1000)
            own["heartbeat.interval.ms"] = int(session_timeout_s * 250)
        self._consumer = consumer(self.cluster, group_id or f"segstream-subscriber-{time.time_ns()}", **own)
        self._in_hand: Message | None = None
        self._snapshot_done: dict[int, int] = {}  # membership partition -> next offset, not yet committed
        self._snapshot_committed_at = time.monotonic()
        self._closed = False
        self._idle_since = time.monotonic()  # of the last message or assignment, for stop_after_idle_s
        try:
            self._snapshot, self._start = self._plan(from_beginning)
        except BaseException:
            self._consumer.close()
            raise
        self._events = self._run()

    def __iter__(self) -> Iterator[SegmentChange]:
        return self._events

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop; in a group, commit up to the last event handed out."""
        if self._closed:
            return
        self._closed = True
        self._events.close()
        if self._in_hand is not None:
            self._store(self._in_hand)
        self._commit_snapshot()
        self._consumer.close()  # commits the stored offsets of the changes when in a group

    def _plan(self, from_beginning: bool) -> tuple[dict[int, int] | None, dict[int, int]]:
        """Where the snapshot goes on from (membership partition -> offset, {}: from the
        beginning; None: no snapshot), and partition -> offset where the changes follow on a
        first start (none when a group resumes past the snapshot). A group's commits say which
        (module docstring)."""
        marks = self._watermarks(self.topic_changes)
        if self._committed(self.topic_changes, marks):
            return None, {}
        if from_beginning or self.group_id is not None:
            within = self._committed(self.topic_membership, self._watermarks(self.topic_membership))
            if from_beginning or within:
                # The reported ends are at most the real ones (Tansu): more duplicates, never a gap.
                return within, {p: high for p, (_, high) in marks.items()}
        reported = {(self.topic_changes, p): high for p, (low, high) in marks.items() if high > low}
        confirmed = confirmed_end_offsets(self.cluster, reported, timeout_s=3.0)
        return None, {p: confirmed.get((self.topic_changes, p), high) for p, (_, high) in marks.items()}

    def _committed(self, topic: str, marks: dict[int, tuple[int, int]]) -> dict[int, int]:
        """Partition -> offset this subscriber's group committed on ``topic`` (none without a group)."""
        if self.group_id is None:
            return {}
        asked = [TopicPartition(topic, p) for p in marks]
        return {tp.partition: tp.offset for tp in self._consumer.committed(asked, timeout=10) if tp.offset >= 0}

    def _watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None or not meta.partitions:
            raise LookupError(f"topic {topic!r} not found on {self.bootstrap} (a worker creates it at start)")
        return {
            p: self._consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in sorted(meta.partitions)
        }

    def _run(self) -> Iterator[SegmentChange]:
        if self._snapshot is not None:
            yield from self._read_snapshot(self._snapshot)
            self._commit_snapshot()
        if self.group_id is None:
            self._consumer.assign([TopicPartition(self.topic_changes, p, o) for p, o in self._start.items()])
        else:
            self._consumer.subscribe([self.topic_changes], on_assign=self._on_assign)
        self._idle_since = time.monotonic()
        while True:
            msg = self._consumer.poll(self.poll_timeout_s)
            if msg is None:
                if self.stop_after_idle_s is not None and time.monotonic() - self._idle_since >= self.stop_after_idle_s:
                    return
                continue
            if msg.error():
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                log.warning("%s: %s", self.topic_changes, msg.error())
                continue
            self._idle_since = time.monotonic()
            change = self._parse(msg, snapshot=False)
            if change is not None and self._wanted(change):
                self._in_hand = msg
                yield change
            self._store(msg)

    def _read_snapshot(self, within: dict[int, int]) -> Iterator[SegmentChange]:
        """Every membership row from ``within`` (else the beginning) to the partitions' ends, as
        snapshot events."""
        marks = self._watermarks(self.topic_membership)
        start = {p: max(low, within.get(p, low)) for p, (low, _) in marks.items()}
        ends = {(self.topic_membership, p): high for p, (_, high) in marks.items() if high > start[p]}
        partitions = [TopicPartition(self.topic_membership, p, offset) for p, offset in start.items()]
        for msg in read_until_quiet(self.cluster, partitions, SNAPSHOT_QUIET_S, ends=ends):
            change = self._parse(msg, snapshot=True)
            if change is not None and self._wanted(change):
                self._in_hand = msg
                yield change
            self._store(msg)

    def _commit_snapshot(self) -> None:
        """Commit the snapshot's progress in the group (module docstring)."""
        if self.group_id is None or not self._snapshot_done:
            return
        done = [TopicPartition(self.topic_membership, p, o) for p, o in self._snapshot_done.items()]
        try:
            self._consumer.commit(offsets=done, asynchronous=False)
        except KafkaException as exc:  # e.g. Apache Kafka refuses it while another member is in the group
            log.warning("the snapshot's position was not committed in group %r: %s", self.group_id, exc)
        self._snapshot_done.clear()
        self._snapshot_committed_at = time.monotonic()

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Idle time counts from here (joining a group takes a while). On the group's first
        start, begin at the recorded offsets and store them, so that a partition without
        traffic is not read from its beginning after a restart."""
        self._idle_since = time.monotonic()
        first = [tp for tp in partitions if tp.partition in self._start]
        if not first:
            return
        for tp in first:
            tp.offset = self._start.pop(tp.partition)
        consumer.assign(partitions)
        consumer.store_offsets(offsets=first)

    def _parse(self, msg: Message, snapshot: bool) -> SegmentChange | None:
        """The change in ``msg``; None for a record to skip (a forgotten user's membership
        tombstone, silently; anything off the contract, with a warning)."""
        if msg.value() is None:
            return None
        try:
            return SegmentChange.from_json(msg.value(), snapshot)
        except InvalidEvent as exc:
            log.warning("skipping %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)
            return None

    def _wanted(self, change: SegmentChange) -> bool:
        return self.segments is None or change.segment in self.segments or change.previous_segment in self.segments

    def _store(self, msg: Message) -> None:
        """Mark ``msg`` handled, so the group's next commit covers it."""
        self._in_hand = None
        if self.group_id is None:
            return
        if msg.topic() == self.topic_membership:
            self._snapshot_done[msg.partition()] = msg.offset() + 1
            if time.monotonic() - self._snapshot_committed_at >= SNAPSHOT_COMMIT_EVERY_S:
                self._commit_snapshot()
            return
        try:
            self._consumer.store_offsets(message=msg)
        except KafkaException as exc:  # the partition went to another member meanwhile
            log.debug("offset of %s[%d]@%d not stored: %s", msg.topic(), msg.partition(), msg.offset(), exc)


def subscribe(settings: Settings, **options: Any) -> Subscriber:
    """A :class:`Subscriber` to the topics of ``settings``, secured as they say; ``options`` as
    Subscriber takes them (a ``config`` given is added to the security properties)."""
    config = {**librdkafka_security(settings), **options.pop("config", {})}
    return Subscriber(
        settings.bootstrap,
        topic_changes=settings.topic_changes,
        topic_membership=settings.topic_membership,
        session_timeout_s=settings.session_timeout_s,
        config=config,
        **options,
    )
