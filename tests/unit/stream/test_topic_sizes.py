"""The repartition topic takes any record the inputs take, and a broker that will not raise it
stops the start with one line."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigEntry

from stream import kafka
from stream.config import load_settings
from stream.kafka import FORWARD_MAX_BYTES, KAFKA_MAX_SIZE, MAX_MESSAGE_BYTES, ensure_topics, forward_limit


def test_the_limit_is_twice_the_largest_input_and_at_least_a_default_request():
    assert forward_limit([]) == FORWARD_MAX_BYTES
    assert forward_limit([1_048_588, 1_000_000]) == FORWARD_MAX_BYTES
    assert forward_limit([1_048_588, 80 << 20]) == 160 << 20
    assert forward_limit([KAFKA_MAX_SIZE]) == KAFKA_MAX_SIZE


def done(value: Any = None, error: Exception | None = None) -> Future:
    future: Future = Future()
    future.set_exception(error) if error else future.set_result(value)
    return future


class Broker:
    """An AdminClient for a cluster whose topics ``limits`` exist with those limits (the others
    are created) and that refuses to alter a topic."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self.altered: list[Any] = []

    def list_topics(self, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(topics=dict.fromkeys(self.limits))

    def create_topics(self, topics: list[Any]) -> dict[str, Future]:
        return {t.topic: done() for t in topics}

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, Future]:
        return {r: done({MAX_MESSAGE_BYTES: ConfigEntry(MAX_MESSAGE_BYTES, str(self.limits[r.name]))}) for r in resources}

    def incremental_alter_configs(self, resources: list[Any]) -> dict[Any, Future]:
        self.altered += resources
        return {r: done(error=KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))) for r in resources}


def test_a_repartition_topic_the_broker_will_not_raise_stops_the_start(monkeypatch):
    settings = load_settings(env={}, app_id="shop")
    limits = {name: 1_048_588 for name in (*settings.input_topics, settings.topic_repartition)}
    monkeypatch.setattr(kafka, "admin", lambda *args, **kwargs: Broker(limits))
    with pytest.raises(SystemExit) as stopped:
        ensure_topics(settings)
    line = str(stopped.value)
    assert "\n" not in line and "shop-repartition" in line and "Topic authorization failed" in line
    assert f"--add-config max.message.bytes={FORWARD_MAX_BYTES}" in line


def test_a_repartition_topic_that_takes_enough_is_left_alone(monkeypatch):
    settings = load_settings(env={}, app_id="shop")
    broker = Broker({**dict.fromkeys(settings.input_topics, 1_048_588), settings.topic_repartition: FORWARD_MAX_BYTES})
    monkeypatch.setattr(kafka, "admin", lambda *args, **kwargs: broker)
    ensure_topics(settings)
    assert broker.altered == []
