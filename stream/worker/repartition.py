"""Input events that arrived on another partition than their user's, forwarded to it.

A user's row lives on the partition murmur2 gives the user id (stream/worker/store.py), held by
one worker. Producers do not all agree: librdkafka and kcat hash keys with CRC32 by default, and
a null key goes anywhere. An event whose user belongs to another partition is forwarded, bytes
unchanged, to that partition of the internal ``{app_id}-repartition`` topic (as Kafka Streams
repartitions), with a header naming where it first arrived; the worker holding the partition
applies it under that first position. Exactly once per user: the forwards are delivered before
the batch is acknowledged (a crash forwards again), and the user's state recognises a copy by
its first position and its event id.

Any record an input topic accepted can be forwarded. Kafka Streams leaves this to the operator
(``producer.max.request.size`` and ``topic.max.message.bytes``); a record that arrived would
otherwise be dead-lettered for where a producer's partitioner put it. Two limits stand in the
way. The producer's own check measures a record before compression, while brokers judge a
batch after it, by the rule the input already passed: the worker's producer has no cap of its
own (stream/worker/app.py). The repartition topic takes batches of twice the largest input
topic's ``max.message.bytes`` (a forward is the record lz4-compressed again, with a key and a
header; its producer's codec may have packed it tighter), and at least 100 MiB, what a broker
takes in one request by default, so that on such a broker no codec makes the topic's limit the
one a forward meets (stream/kafka.py: ``ensure_topics``). An existing repartition topic that
takes less is raised at start; a broker that refuses stops the start with one line saying how
to raise it. Values are not carried by reference (a pointer to the input record): the forward
would then depend on the input's retention and cost the receiving worker a read per record.
The other outputs of a forwarded event are small: a dead letter carries at most 64 KB of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stream.contract.records import Message
from stream.kafka import user_partition
from stream.worker.context import WorkerContext

SOURCE_HEADER = "segstream-source"


def arrived(record: Any, repartition_topic: str) -> Message:
    """A consumed record as the pipeline reads it: a forwarded one under its first position
    (a record on the repartition topic that no worker forwarded stays where it is, and is
    dead-lettered as a record of no input topic)."""
    message = Message.of(record)
    if record.topic != repartition_topic:
        return message
    first = _first_position(record.headers)
    if first is None:
        return message
    topic, partition, offset = first
    return Message(topic, partition, offset, message.key, message.value, forwarded=True)


def _first_position(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None) -> tuple[str, int, int] | None:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        if name == SOURCE_HEADER:
            try:
                topic, partition, offset = bytes(value).decode().rsplit(":", 2)
                return topic, int(partition), int(offset)
            except (ValueError, UnicodeDecodeError):
                return None
    return None


async def forward(ctx: WorkerContext, events: list[tuple[Message, str]]) -> None:
    """Send each (message, user id) to the user's partition of the repartition topic, and wait
    until every one is delivered."""
    sent = [
        await ctx.topics.repartition.send(
            key=user_id.encode(),
            value=message.value,
            partition=user_partition(user_id, ctx.settings.partitions),
            headers=[(SOURCE_HEADER, f"{message.topic}:{message.partition}:{message.offset}".encode())],
        )
        for message, user_id in events
    ]
    for delivery in sent:
        await delivery
    ctx.counters.forwarded += len(sent)
