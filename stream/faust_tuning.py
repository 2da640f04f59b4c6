"""A Faust setting Faust does not expose: how long a fetch may wait on the broker.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for its aiokafka consumer. Tansu answers
a fetch only when that wait is over, so every round trip to a quiet partition costs 1.5 s and
catalogue loads and tests crawl. We set the value on the consumer Faust built, before it starts
(aiokafka hands it to its fetcher in ``start()``).
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


def set_fetch_max_wait(milliseconds: int) -> None:
    """Make every Faust aiokafka consumer created from now on wait at most ``milliseconds``."""

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = milliseconds
            return consumer

    class Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    faust_aiokafka.Transport.Consumer = Consumer
