"""Kafka plumbing shared by the worker, the CLI and the tools: topics, reading to the end on a
broker that under-reports it, and confluent-kafka clients configured to agree with Faust and the
JVM on partitioning."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache, partial
from typing import Any, TypeVar

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from stream.config import Settings
from stream.logs import LIBRDKAFKA
from stream.progress import progress
from stream.security import librdkafka_security

# librdkafka properties that name a cluster and how to reach it: bootstrap.servers and the
# security properties (cluster_config), plus, for a Subscriber, the caller's own.
Cluster = Mapping[str, Any]

# Every confluent-kafka client: librdkafka's lines through Python logging (not raw on stderr),
# and a broker that does not answer retried every half second, then up to every five.
CLIENT_DEFAULTS: dict[str, Any] = {
    "logger": LIBRDKAFKA,
    "reconnect.backoff.ms": 500,
    "reconnect.backoff.max.ms": 5000,
    "socket.connection.setup.timeout.ms": 5000,
    "log.connection.close": False,
}
# murmur2 is what the Java client and Faust (aiokafka) use: keyed events from any producer land
# on the partition whose table shard holds that key.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
}
_PARTITIONER = DefaultPartitioner()
# Kafka's sizes are signed 32-bit numbers.
KAFKA_MAX_SIZE = 2**31 - 1
# The largest produce request an Apache Kafka broker takes by default (socket.request.max.bytes):
# the least the repartition topic takes, so its own limit is not what stops a forward.
FORWARD_MAX_BYTES = 100 * 1024 * 1024
MAX_MESSAGE_BYTES = "max.message.bytes"
log = logging.getLogger("segstream")
# The worker's table; Faust keeps it in the changelog topic APP_ID-users-changelog.
USERS_TABLE = "users"


def key_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client, aiokafka and our producers pick for ``key`` (murmur2)."""
    return _PARTITIONER(key, range(partitions), None)


def user_partition(user_id: str, partitions: int) -> int:
    """The partition of the users table (and of the inputs) that holds ``user_id``."""
    return key_partition(user_id.encode(), partitions)


def users_partition(partitions: int) -> Callable[[str], int]:
    """:func:`user_partition` for one partition count, remembered for the recent users: it runs
    for every event and every move (murmur2 in Python: ~2.3 µs a call, ~0.05 µs remembered)."""
    return lru_cache(maxsize=1 << 16)(partial(user_partition, partitions=partitions))


# librdkafka otherwise waits up to 500 ms per fetch against Tansu.
CONSUMER_DEFAULTS: dict[str, Any] = {"fetch.wait.max.ms": 10, "enable.partition.eof": False}


def cluster_config(settings: Settings) -> dict[str, Any]:
    """The :data:`Cluster` of ``settings``: every client segstream opens is made from it."""
    return {"bootstrap.servers": settings.bootstrap, **librdkafka_security(settings)}


def producer(cluster: Cluster, **extra: Any) -> Producer:
    return Producer({**CLIENT_DEFAULTS, **PRODUCER_DEFAULTS, **cluster, **extra})


def consumer(cluster: Cluster, group_id: str, **extra: Any) -> Consumer:
    config = {
        **CLIENT_DEFAULTS,
        **CONSUMER_DEFAULTS,
        "auto.offset.reset": "earliest",
        **cluster,
        "group.id": group_id,
        **extra,
    }
    return Consumer(config)


def admin(cluster: Cluster, **extra: Any) -> AdminClient:
    return AdminClient({**CLIENT_DEFAULTS, **cluster, **extra})


# Errors that retrying does not mend: a certificate not trusted, credentials refused.
REFUSED = (KafkaError._SSL, KafkaError._AUTHENTICATION)


def wait_for_broker(cluster: Cluster, timeout_s: float) -> str | None:
    """The cluster id once a broker answers; SystemExit with one line saying why at once when
    TLS or authentication fails, else when none answers within ``timeout_s``."""
    bootstrap = cluster["bootstrap.servers"]
    errors: list[KafkaError] = []
    client = admin(cluster, error_cb=errors.append, log_level=0)  # the errors go into the one line
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic()))).cluster_id
        except KafkaException as exc:
            client.poll(0)  # delivers error_cb and librdkafka's log lines
            refused = [e for e in errors if e.code() in REFUSED]
            if refused:
                raise SystemExit(
                    f"segstream: Kafka at {bootstrap} refused the connection: {refused[-1].str()}; "
                    "check SEGSTREAM_SECURITY_PROTOCOL, SEGSTREAM_SASL_* and SEGSTREAM_SSL_* (docs/security.md)"
                ) from None
            if time.monotonic() >= deadline:
                raise SystemExit(_no_broker(cluster, timeout_s, errors, exc.args[0])) from None


def _no_broker(cluster: Cluster, timeout_s: float, errors: list[KafkaError], last: KafkaError) -> str:
    """Why no broker answered, in one line. No transport error but brokers down means that
    connections were accepted, then closed: the cluster wants what the client does not offer."""
    bootstrap = cluster["bootstrap.servers"]
    causes = [e for e in errors if e.code() in (KafkaError._TRANSPORT, KafkaError._RESOLVE)]
    if not causes and any(e.code() == KafkaError._ALL_BROKERS_DOWN for e in errors):
        protocol = cluster.get("security.protocol", "PLAINTEXT")
        return (
            f"segstream: Kafka at {bootstrap} accepts connections but closes them (for {timeout_s:g} s): does it "
            f"require TLS, SASL or a client certificate? SEGSTREAM_SECURITY_PROTOCOL is {protocol} (docs/security.md)"
        )
    why = (causes or errors or [last])[-1].str()
    return (
        f"segstream: no Kafka broker answered at {bootstrap} within {timeout_s:g} s ({why}); "
        "start one (segstream broker) or point SEGSTREAM_BOOTSTRAP / --bootstrap at one"
    )


def publish(settings: Settings, topic: str, events: list[tuple[str, dict[str, Any]]], label: str) -> float:
    """Produce keyed JSON events in order, with a progress line; returns the seconds it took."""
    out = producer(cluster_config(settings))
    start = time.monotonic()
    with progress(label, len(events)) as update:
        for n, (key, doc) in enumerate(events, 1):
            while True:
                try:
                    out.produce(topic, key=key.encode(), value=json.dumps(doc).encode())
                    break
                except BufferError:
                    out.poll(0.05)
            if n % 1000 == 0:
                out.poll(0)
                update(n)
        remaining = out.flush(60)
        if remaining:
            raise SystemExit(f"{remaining} events to {topic} were not acknowledged by the broker")
        update(len(events))
    return time.monotonic() - start


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the contract's topics if missing; input topics share one partition count so a
    user's reviews, behaviours and table shard live on the same partition number. The
    repartition topic is created, or raised, to take any record the inputs take, once they
    exist (stream/worker/repartition.py)."""
    client = admin(cluster_config(settings))
    existing = _topic_names(client, timeout_s)
    wanted = {
        settings.topic_reviews: (settings.partitions, {}),
        settings.topic_behaviors: (settings.partitions, {}),
        settings.topic_items: (settings.partitions, {}),
        settings.topic_changes: (settings.partitions, {}),
        settings.topic_dead_letters: (settings.partitions, {}),
        settings.topic_membership: (settings.partitions, {"cleanup.policy": "compact"}),
        settings.topic_model: (1, {"cleanup.policy": "compact"}),
        settings.topic_model_updates: (1, {}),
        settings.topic_item_vectors: (settings.partitions, {"cleanup.policy": "compact"}),
        settings.topic_forget: (settings.partitions, {}),
    }
    _create(client, settings, {name: spec for name, spec in wanted.items() if name not in existing})
    limit = forward_limit(max_message_bytes(client, settings.input_topics).values())
    if settings.topic_repartition in existing:
        _raise_limit(client, settings.topic_repartition, limit)
    else:
        _create(client, settings, {settings.topic_repartition: (settings.partitions, {MAX_MESSAGE_BYTES: str(limit)})})


def _topic_names(client: AdminClient, timeout_s: float) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return set(client.list_topics(timeout=5).topics)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _create(client: AdminClient, settings: Settings, topics: Mapping[str, tuple[int, dict[str, str]]]) -> None:
    """Create ``topics`` (name: (partitions, config)); one another client just created is fine."""
    if not topics:
        return
    new = [NewTopic(name, parts, settings.replication, config=conf) for name, (parts, conf) in topics.items()]
    for future in client.create_topics(new).values():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def forward_limit(input_limits: Iterable[int]) -> int:
    """The repartition topic's max.message.bytes: twice the largest input's (room for the key,
    the header and a producer's codec that packs tighter than lz4), at least FORWARD_MAX_BYTES."""
    return min(KAFKA_MAX_SIZE, max([FORWARD_MAX_BYTES, *(2 * n for n in input_limits)]))


def max_message_bytes(client: AdminClient, topics: Iterable[str]) -> dict[str, int]:
    """Each topic's max.message.bytes as the broker reports it; a topic it reports none for is
    left out (Tansu reports only the configs a topic was given; a client may not be allowed to read them)."""
    resources = [ConfigResource(ResourceType.TOPIC, topic) for topic in topics]
    limits = {}
    for resource, future in client.describe_configs(resources, request_timeout=10).items():
        try:
            entry = future.result().get(MAX_MESSAGE_BYTES)
        except KafkaException:
            continue
        if entry is not None and entry.value is not None:
            limits[resource.name] = int(entry.value)
    return limits


def _raise_limit(client: AdminClient, topic: str, limit: int) -> None:
    """Raise ``topic``'s max.message.bytes to ``limit`` when the broker reports less (made by an
    earlier version, or inputs raised since); SystemExit with one line when it refuses."""
    current = max_message_bytes(client, [topic]).get(topic)
    if current is None or current >= limit:
        return
    entry = ConfigEntry(MAX_MESSAGE_BYTES, str(limit), incremental_operation=AlterConfigOpType.SET)
    try:
        for future in client.incremental_alter_configs([ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])]).values():
            future.result()
    except KafkaException as exc:
        raise SystemExit(
            f"segstream: {topic} takes records up to {current} bytes, less than the inputs may carry, and the broker "
            f"refused to raise its max.message.bytes to {limit} ({exc.args[0].str()}); raise it: kafka-configs.sh "
            f"--alter --entity-type topics --entity-name {topic} --add-config max.message.bytes={limit}"
        ) from None
    log.warning("raised max.message.bytes of %s from %d to %d: it takes any record the inputs take", topic, current, limit)


def read_until_quiet(
    cluster: Cluster,
    partitions: list[TopicPartition],
    quiet_s: float,
    first_within_s: float | None = None,
    ends: Mapping[tuple[str, int], int] | None = None,
) -> Iterator[Any]:
    """The messages of ``partitions`` (with start offsets) until none arrives for ``quiet_s``.

    Used instead of reading up to the end offsets, which Tansu under-reports (the last record
    *batch*'s base offset + 1). With ``first_within_s`` the quiet clock starts at the first
    message, and TimeoutError says none came that soon. With ``ends`` (reported end offsets of
    the partitions that hold records) it also stops, so a busy topic ends too, once each of
    them has delivered the record before its end: at the next empty poll (the rest of that
    batch came in the same fetch), at the latest ``quiet_s`` later.
    """
    reader = consumer(cluster, f"segstream-reader-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        reader.assign(partitions)
        started = quiet_since = time.monotonic()
        seen_any = first_within_s is None
        unreached = None if ends is None else set(ends)
        reached_at = started if unreached == set() else None
        while seen_any or time.monotonic() - started < first_within_s:  # type: ignore[operator]
            now = time.monotonic()
            if seen_any and now - quiet_since >= quiet_s or reached_at is not None and now - reached_at >= quiet_s:
                return
            msg = reader.poll(0.1)
            if msg is None or msg.error():
                if reached_at is not None:
                    return
                continue
            seen_any, quiet_since = True, time.monotonic()
            key = (msg.topic(), msg.partition())
            if unreached and key in unreached and msg.offset() >= ends[key] - 1:  # type: ignore[index]
                unreached.discard(key)
                reached_at = None if unreached else quiet_since
            yield msg
        raise TimeoutError(f"nothing arrived from {partitions} within {first_within_s}s")
    finally:
        reader.close()


# (topic, partition): a plain tuple or Faust's TP, a named tuple that hashes and compares as one.
PartitionKey = TypeVar("PartitionKey", bound=tuple[str, int])


def confirmed_end_offsets(
    cluster: Cluster, reported: Mapping[PartitionKey, int], quiet_s: float = 0.3, timeout_s: float = 30.0
) -> dict[PartitionKey, int]:
    """``reported`` end offsets, raised to the last offset really there + 1 (see read_until_quiet)."""
    confirmed = dict(reported)
    probe = [tp for tp, end in reported.items() if end and end > 0]
    if not probe:
        return confirmed
    reader = consumer(cluster, f"segstream-end-offsets-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        reader.assign([TopicPartition(*tp, reported[tp] - 1) for tp in probe])
        pending: set[tuple[str, int]] = set(probe)
        quiet_since = time.monotonic()
        deadline = quiet_since + timeout_s
        while time.monotonic() < deadline and (pending or time.monotonic() - quiet_since < quiet_s):
            msg = reader.poll(0.05)
            if msg is None or msg.error():
                continue
            tp = (msg.topic(), msg.partition())
            pending.discard(tp)
            confirmed[tp] = max(confirmed[tp], msg.offset() + 1)  # type: ignore[index]
            quiet_since = time.monotonic()
        return confirmed
    finally:
        reader.close()


def read_last_value(cluster: Cluster, topic: str, quiet_s: float = 0.5, timeout_s: float = 30.0) -> bytes | None:
    """The newest value on partition 0 of a (compacted) topic: read from the record before the
    reported end (on Apache Kafka exactly one record; on Tansu the rest of the last batch too)."""
    probe = consumer(cluster, group_id=f"segstream-reader-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        low, high = probe.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
    finally:
        probe.close()
    if high <= low:
        return None
    last: bytes | None = None
    for msg in read_until_quiet(cluster, [TopicPartition(topic, 0, max(high - 1, low))], quiet_s, timeout_s):
        last = msg.value()
    return last
