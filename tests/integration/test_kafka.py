"""Kafka plumbing against the real broker: partitioning agreement and end offsets."""

from __future__ import annotations

from confluent_kafka import TopicPartition
from faust.types import TP
from kafka_io import produce, read

from stream.kafka import cluster_config, confirmed_end_offsets, consumer, key_partition


def test_our_producers_and_table_stores_agree_on_partitions(settings_for):
    settings = settings_for()
    users = [str(n) for n in range(60)] + ["alice", "Bob", "ü-ser"]
    produce(settings, settings.topic_reviews, [(u, {"n": i}) for i, u in enumerate(users)])
    reader = consumer(cluster_config(settings), "partition-check", **{"enable.auto.commit": False})
    reader.assign([TopicPartition(settings.topic_reviews, p, 0) for p in range(settings.partitions)])
    seen = {}
    while len(seen) < len(users):
        msg = reader.poll(1.0)
        if msg is not None and not msg.error():
            seen[msg.key().decode()] = msg.partition()
    reader.close()
    assert seen == {u: key_partition(u.encode(), settings.partitions) for u in users}
    assert len(set(seen.values())) == settings.partitions


def test_end_offsets_are_confirmed_past_the_last_batch(settings_for):
    settings = settings_for()
    produce(settings, settings.topic_model, [("model", {"v": n}) for n in range(8)])  # one batch
    assert len(read(settings, settings.topic_model, 8)) == 8
    reader = consumer(cluster_config(settings), "end-offsets")
    _, reported = reader.get_watermark_offsets(TopicPartition(settings.topic_model, 0), timeout=10)
    reader.close()
    tp = TP(settings.topic_model, 0)
    assert confirmed_end_offsets(cluster_config(settings), {tp: reported}) == {tp: 8}
    assert confirmed_end_offsets(cluster_config(settings), {tp: 0}) == {tp: 0}
