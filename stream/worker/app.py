"""The Faust shell: a worker built from its parts.

Flow: ``reviews``/``behaviors`` -> agents (stream/worker/agents.py: validate, encode off the
event loop, fold into the ``users`` table, assign with this worker's copy of the model) ->
``segment-changes`` and ``segment-membership``; anything unusable -> ``dead-letters``. Each
batch's update goes to the one-partition ``segment-model-updates`` topic, whose holder owns the
model and publishes versions on ``segment-model``; every worker follows them and sweeps its
users (stream/worker/model_sync.py). Events on another partition than their user's go round
through the repartition topic (stream/worker/repartition.py). The ``items`` agent encodes the
catalogue into the item-vectors topic, which every worker reads whole (stream/worker/catalogue.py).
The logic of each step is in stream/core; here it is wired to Kafka.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

import faust
from faust.types.auth import CredentialsT

from models.encoder import Encoder
from models.segmentation import Segmentation
from stream.config import Settings
from stream.core.catalogue import CatalogueRows
from stream.core.pipeline import Pipeline
from stream.core.replay_tracker import ReplayTracker
from stream.factories import encoder_for
from stream.kafka import cluster_config, ensure_topics, users_partition, wait_for_broker
from stream.logs import faust_logging_config, throttle_client_logs
from stream.security import aiokafka_security, uses_sasl, uses_tls
from stream.worker import (
    agents, broker_watch, catalogue, explain, forget, held, http_auth, metrics, model_sync, page, probes,
    rebalance, replay_hooks, republish, sizes, web,
)
from stream.worker.broker_watch import BrokerWatch, reason_after_crash
from stream.worker.consumer_patch import adapt_faust_consumer
from stream.worker.context import WorkerContext
from stream.worker.failures import Failures
from stream.worker.gaps import DeliveryGaps
from stream.worker.memory import limit_malloc_arenas
from stream.worker.producer_patch import use_delivered_flush
from stream.worker.rebalance import Choreography, Participants
from stream.worker.recovery import forget_other_cluster, use_checked_recovery
from stream.worker.store import FaustUserStore, Tables, use_key_partitioned_rocksdb
from stream.worker.topics import Topics
from stream.worker.unflushed import UnflushedPartitions



@dataclass(frozen=True)
class Adjustments:
    """What the Faust adjustments share with the worker built after them."""

    unflushed: UnflushedPartitions | None  # where this data dir marks the partitions it writes; None: in memory
    gaps: DeliveryGaps  # where each partition's next record should start (stream/worker/gaps.py)


def install_faust_adjustments(settings: Settings, replay: ReplayTracker) -> Adjustments:
    """Every change segstream makes to Faust itself, in one step, before an app is created:
    the consumer adjustments (stream/worker/consumer_patch.py: fetch wait, confirmed end
    offsets, rewind after recovery, a replay's start offsets, where reading starts), a producer
    flush that waits for delivery (stream/worker/producer_patch.py), the key-partitioned
    RocksDB store (stream/worker/store.py) and table recovery that wipes partitions ahead of or
    behind their changelog or marked as written when its worker stopped
    (stream/worker/recovery.py)."""
    gaps = DeliveryGaps()
    adapt_faust_consumer(cluster_config(settings), settings.fetch_max_wait_ms, replay.start, gaps.start_at)
    use_delivered_flush()
    use_key_partitioned_rocksdb()
    unflushed = None if settings.store.startswith("memory") else UnflushedPartitions(settings.app_data_dir)
    use_checked_recovery(unflushed)
    return Adjustments(unflushed, gaps)


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's form of stream/security.py's aiokafka arguments: Faust hands its consumers and
    producers the same arguments back (tests/unit/stream/test_security.py checks that)."""
    auth = aiokafka_security(settings)
    if uses_sasl(settings):
        return faust.SASLCredentials(
            username=settings.sasl_username, password=settings.sasl_password,
            ssl_context=auth.get("ssl_context"), mechanism=settings.sasl_mechanism,
        )
    return faust.SSLCredentials(auth["ssl_context"]) if uses_tls(settings) else None


def new_faust_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.app_data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 4,
        broker_rebalance_timeout=settings.session_timeout_s,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_bind=settings.web_host,  # where the server listens; web_host alone only names it
        web_application_options={"middlewares": http_auth.middlewares(settings.http_token)},
        web_host=settings.web_host,
        web_port=settings.web_port,
        # Faust's debug pages show raw table rows and the partition layout: only when asked for.
        web_router_enabled=settings.debug_views,
        web_tables_enabled=settings.debug_views,
        web_graph_enabled=settings.debug_views,
        web_stats_enabled=settings.debug_views,
        producer_compression_type="lz4",
        # No client-side cap on a record before compression: the broker judges the batch, as it
        # judged the input (stream/worker/repartition.py). Kafka's sizes are signed 32-bit.
        producer_max_request_size=2**31 - 1,
        logging_config=faust_logging_config(settings.log_format),
        autodiscover=False,
    )


def build_worker(
    settings: Settings, encoder: Encoder, segmentation: Segmentation, replay: ReplayTracker, watch: BrokerWatch,
    adjustments: Adjustments,
) -> WorkerContext:
    """A Faust app for ``settings`` that encodes with ``encoder``, assigns with its copy
    ``segmentation`` of the published model, follows ``replay`` and watches the broker with
    ``watch``. Call :func:`install_faust_adjustments` first: it returns ``adjustments``."""
    unflushed, delivery_gaps = adjustments.unflushed, adjustments.gaps
    app = new_faust_app(settings)
    topics = Topics.declare(app, settings)
    tables = Tables.declare(app, settings)

    def active_partitions() -> set[int]:
        """The input partitions this worker holds; none during a rebalance (a row written then
        could reach a partition's new holder after it recovered the table)."""
        if app.rebalancing:
            return set()
        return {tp.partition for tp in app.consumer.assignment() if tp.topic in settings.input_topics}

    ctx = WorkerContext(
        settings=settings,
        app=app,
        topics=topics,
        tables=tables,
        users=FaustUserStore(tables.users, settings.partitions, active_partitions),
        catalogue=CatalogueRows(encoder.dim),
        encoder=encoder,
        local=segmentation,
        pipeline=Pipeline(settings, segmentation, replay, partition_of=users_partition(settings.partitions)),
        replay=replay,
        broker_healthy=lambda: watch.healthy,
        failures=Failures(settings.failure_exit_s),
    )
    agents.register(ctx, delivery_gaps)
    catalogue.register(ctx)
    owner = model_sync.register(ctx, delivery_gaps)
    replay_hooks.register(ctx)
    held_stale = held.register(ctx)
    forget.register(ctx, delivery_gaps)
    sizes.register(ctx)
    broker_watch.register(ctx, watch)
    web.register(ctx, owner)
    page.register(ctx)
    explain.register(ctx)
    probes.register(ctx)
    metrics.register(ctx, owner)
    republish.register(ctx, unflushed)
    rebalance.register(app, Choreography(
        Participants(
            rows=ctx.rows, flush=lambda: app.producer.flush(), unflushed=unflushed,
            forget_census=ctx.pipeline.census.forget, publish_model=owner.publish, own_model=owner.assigned,
            held_stale=held_stale, positions_reset=delivery_gaps.reset,
        ),
        settings.input_topics, settings.topic_model_updates,
    ))
    return ctx



# Faust's worker takes these spellings of Python's level names.
FAUST_LOG_LEVELS = {"critical": "crit", "warning": "warn"}


def run_worker(
    settings: Settings, loglevel: str, replay: ReplayTracker | None = None, faust_options: Sequence[str] = ()
) -> int:
    """Wait for the broker, create the topics, start the tables afresh if they came from another
    cluster, load the encoder and the published model, and run the worker (``faust_options``: more
    options of Faust's worker command, e.g. --logfile). A worker that stops itself
    (broker_watch.py), or that Faust stops with an error the broker explains, exits non-zero with
    its reason as the last line."""
    limit_malloc_arenas()  # before the threads start: stream/worker/memory.py
    replay = replay or ReplayTracker.live()
    cluster_id = wait_for_broker(cluster_config(settings), settings.broker_wait_s)
    ensure_topics(settings)
    forget_other_cluster(settings.app_data_dir, cluster_id)
    adjustments = install_faust_adjustments(settings, replay)
    throttle_client_logs()
    encoder = encoder_for(settings)
    segmentation = model_sync.read_published(settings, encoder)
    watch = BrokerWatch(cluster_config(settings), cluster_id)
    ctx = build_worker(settings, encoder, segmentation, replay, watch, adjustments)
    sys.argv = [
        "segstream", "worker", "--loglevel", FAUST_LOG_LEVELS.get(loglevel.lower(), loglevel),
        "--web-bind", settings.web_host, "--web-host", settings.web_host, "--web-port", str(settings.web_port),
        *faust_options,
    ]
    try:
        ctx.app.main()
    except SystemExit as stopped:
        if stopped.code not in (None, 0) and not ctx.exit_reason:  # Faust crashed: was it the broker?
            ctx.exit_reason = reason_after_crash(settings.bootstrap, watch)
        raise
    finally:
        if ctx.exit_reason:
            raise SystemExit(f"segstream worker: {ctx.exit_reason}")
    return 0
