"""``GET /metrics``: Prometheus text format, Faust's own sensors and segstream's.

Faust's prometheus sensors (``faust_*``) measure what Faust sees: messages, offsets, commits,
rebalances, HTTP. segstream's (``segstream_*``, table in README) are read from the worker's
counters when scraped, so the hot path only adds to plain ints. Consumer lag comes from end
offsets segstream confirms by reading (stream/kafka.py): Tansu under-reports them, and lag is
never negative.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import KafkaException, TopicPartition
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stream.contract.records import shown
from stream.kafka import cluster_config, confirmed_end_offsets, consumer
from stream.worker import faust_sensors
from stream.worker.context import WorkerContext, survive
from stream.worker.model_sync import OwnerShell

log = logging.getLogger("segstream")

LAG_EVERY_S = 15.0


class SegstreamCollector(Collector):
    """segstream's metrics, read from ``ctx`` at each scrape."""

    def __init__(self, ctx: WorkerContext, owner: OwnerShell) -> None:
        self.ctx = ctx
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        yield from self._events()
        yield from self._encoder()
        yield from self._model()

    def _events(self) -> Iterator[Metric]:
        ctx, counters, tallies = self.ctx, self.ctx.counters, self.ctx.tallies
        yield counter("segstream_events_applied", "input events applied to user state", counters.applied)
        yield counter("segstream_events_duplicate", "input events recognised as already applied", counters.duplicates)
        yield counter("segstream_events_forwarded", "input events forwarded to their user's partition", counters.forwarded)
        letters = CounterMetricFamily("segstream_dead_letters", "records dead-lettered, by reason and topic", labels=["reason", "topic"])
        for (reason, topic), n in sorted(tallies.dead_letters.items()):
            letters.add_metric([reason, topic], n)
        yield letters
        changes = CounterMetricFamily("segstream_changes", "segment-change events published, by reason and mode", labels=["reason", "mode"])
        for (reason, mode), n in sorted(tallies.changes.items()):
            changes.add_metric([reason, mode], n)
        yield changes
        held = ctx.pipeline.waiting.totals()
        yield gauge("segstream_behaviours_held", "behaviours held for items not in the catalogue yet", held["behaviours"])
        yield gauge("segstream_catalogue_items", "items in this worker's catalogue", len(ctx.catalogue))
        lag = GaugeMetricFamily("segstream_consumer_lag", "input events after the group's committed offset, per partition", labels=["topic", "partition"])
        for (topic, partition), n in sorted(tallies.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag

    def _encoder(self) -> Iterator[Metric]:
        tallies = self.ctx.tallies
        yield counter("segstream_encoder_batches", "batches encoded", tallies.encoder_batches)
        yield counter("segstream_encoder_texts", "texts encoded (rate: texts per second)", tallies.encoder_texts)
        yield counter("segstream_encoder_seconds", "seconds spent encoding (per batch: rate of this / rate of batches)", tallies.encoder_seconds)
        yield gauge("segstream_encoder_last_batch_seconds", "seconds the last batch took to encode", tallies.last_batch_seconds)
        readability = self.ctx.encoder.readability
        yield counter("segstream_encoder_tokens", "tokens of the texts encoded (prefix and special tokens aside)", readability.tokens)
        yield counter("segstream_encoder_unknown_tokens", "of those, tokens the vocabulary lacks (the model cannot read them)",
                      readability.unknown_tokens)
        yield counter("segstream_encoder_unreadable_texts", "texts whose tokens are more than 20% unknown",
                      readability.unreadable_texts)
        yield gauge("segstream_encoder_recent_unreadable_share", "share of the last 200 texts that were unreadable",
                    readability.recent_unreadable_share)

    def _model(self) -> Iterator[Metric]:
        ctx = self.ctx
        model = ctx.local.model
        yield gauge("segstream_model_version", "version of the model this worker assigns with", model.version)
        yield gauge("segstream_model_seeded", "1 once the model has centroids", int(model.seeded))
        changed = model.history[-1]["ts"] if model.history else None
        yield gauge("segstream_model_age_seconds", "seconds since the model's centroids last changed (seed, refresh, rebuild)",
                    0.0 if changed is None else max(0.0, time.time() - changed))
        yield gauge("segstream_model_owner", "1 while this worker owns the model", int(self.owner.active))
        yield counter("segstream_owner_updates_received", "workers' updates this worker received as the owner", ctx.counters.updates_received)
        yield counter("segstream_owner_updates_learned", "updates this worker learned as the owner", ctx.tallies.updates_learned)
        events = CounterMetricFamily("segstream_model_events", "seeds, refreshes, re-seeds and rebuilds this worker made as the owner", labels=["event"])
        for event, n in sorted(ctx.tallies.model_events.items()):
            events.add_metric([event], n)
        yield events
        sizes = GaugeMetricFamily("segstream_segment_size", "users in each segment (the workers' census)", labels=["segment"])
        for segment, size in enumerate(model.sizes):
            sizes.add_metric([str(segment)], int(size))
        yield sizes


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def measure_lag(ctx: WorkerContext) -> dict[tuple[str, int], int]:
    """Input partition -> confirmed end offset minus the group's committed offset (never < 0)."""
    settings = ctx.settings
    partitions = ctx.input_partitions()
    if not partitions:
        return {}
    reader = consumer(cluster_config(settings), settings.app_id, **{"enable.auto.commit": False})
    try:
        reported = {tp: reader.get_watermark_offsets(TopicPartition(*tp), timeout=5)[1] for tp in partitions}
        committed = {(tp.topic, tp.partition): tp.offset for tp in reader.committed([TopicPartition(*tp) for tp in partitions], timeout=5)}
    finally:
        reader.close()
    ends = confirmed_end_offsets(cluster_config(settings), reported, timeout_s=5.0)
    return {tp: max(0, ends[tp] - max(committed.get(tp, 0), 0)) for tp in partitions}


def register(ctx: WorkerContext, owner: OwnerShell) -> None:
    """``/metrics`` on the worker's web server, and the lag probe every ``LAG_EVERY_S``."""
    registry = CollectorRegistry()
    setup_prometheus_sensors(ctx.app, pattern="/metrics", registry=registry, name_prefix="faust")
    faust_sensors.install(ctx.app)
    registry.register(SegstreamCollector(ctx, owner))
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lag")

    async def probe_lag() -> None:
        try:
            ctx.tallies.lag = await asyncio.get_running_loop().run_in_executor(executor, measure_lag, ctx)
        except KafkaException as exc:
            log.warning("consumer lag not measured: %s", shown(exc))

    @ctx.app.timer(interval=LAG_EVERY_S)
    async def measure_consumer_lag() -> None:
        if ctx.settled:
            await survive("measuring consumer lag", probe_lag())
