"""The model loop's Faust side: own the model where Kafka puts the updates partition, follow
every published version, and sweep this worker's users when the centroids move.

The loop itself is in stream/core (:class:`ModelOwner`, :class:`Sweeper`); this module reads
and writes the topics, runs the owner in a thread of its own (a refresh is a k-means run, and
serialising a snapshot takes time), and yields to the event loop between sweep chunks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import faust
from aiokafka.structs import TopicPartition
from confluent_kafka import KafkaException

from models.encoder import Encoder
from models.fingerprint import EncoderFingerprint, mismatch
from models.segmentation import ModelUpdate, Segmentation, SegmentationParams
from stream.config import Settings
from stream.contract.records import DeadLetter, Source, shown
from stream.core.owner import ModelOwner, RefusedUpdate
from stream.core.sweep import Sweeper, pause_after
from stream.factories import new_segmentation, segmentation_params
from stream.kafka import cluster_config, read_last_value
from stream.worker.broker_watch import exit_worker
from stream.worker.consumer_patch import own_reader
from stream.worker.gaps import DeliveryGaps, with_skipped
from stream.worker.context import WorkerContext, survive
from stream.worker.output import emit, send_dead_letter

log = logging.getLogger("segstream")
T = TypeVar("T")
OWNER_RETRY_S = 2.0


class ForeignModel(SystemExit):
    """The model topic holds a model another encoder made: its centroids mean nothing to this
    worker's vectors (models/fingerprint.py). A SystemExit, so that a worker meeting it at
    start exits non-zero with this one line and no traceback."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"segstream worker: {reason}")
        self.reason = reason


def read_published(settings: Settings, encoder: Encoder) -> Segmentation:
    """The last segmentation published on the model topic, or a new one for ``encoder`` when
    it is empty; ForeignModel when another encoder made it."""
    raw = read_last_value(cluster_config(settings), settings.topic_model)
    if raw is None:
        return new_segmentation(settings, encoder.dim, encoder.fingerprint)
    try:
        segmentation = Segmentation.from_bytes(raw, segmentation_params(settings), encoder.dim)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise SystemExit(
            f"{settings.topic_model} does not hold a model this worker can use ({exc}). Use another "
            "SEGSTREAM_APP_ID and SEGSTREAM_TOPIC_MODEL for a different configuration."
        ) from exc
    check_encoder(segmentation, encoder.fingerprint, settings.topic_model)
    log.info("model loaded: version %s, seeded=%s", segmentation.version, segmentation.model.seeded)
    return segmentation


def check_encoder(segmentation: Segmentation, ours: EncoderFingerprint, topic: str) -> None:
    """ForeignModel when another encoder made ``segmentation``. A snapshot that does not say
    (published before snapshots recorded their encoder) is taken as this encoder's, with a
    warning, and says so from its next publication on."""
    why = mismatch(segmentation.encoder, ours)
    if why:
        raise ForeignModel(foreign_model_reason(topic, why))
    if segmentation.encoder is None:
        log.warning(
            "the model on %s (version %d) does not record its encoder (published by an older segstream); "
            "taking it as made with this worker's encoder %s", topic, segmentation.version, ours,
        )
        segmentation.encoder = ours


def foreign_model_reason(topic: str, why: str) -> str:
    return (
        f"the model on {topic!r} {why}; start this worker with the encoder that made it "
        "(SEGSTREAM_MODEL_PATH, SEGSTREAM_ENCODER_PRECISION) or with model topics of its own "
        "(--app-id, --topic-model, --topic-model-updates)"
    )


class OwnerShell:
    """The :class:`ModelOwner` while this worker holds the updates partition (``active``)."""

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.owner: ModelOwner | None = None
        self.active = False
        self.published_version = -1  # the last version this worker published (logged once each)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-owner")

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def assigned(self, owns: bool) -> None:
        if owns != self.active:
            log.info("model ownership: this worker %s the model (partition 0 of %s)",
                     "now owns" if owns else "no longer owns", self.ctx.settings.topic_model_updates)
        self.active = owns
        if not owns:
            self.owner = None

    async def _load(self) -> ModelOwner | None:
        """On becoming the owner: the last published model, or None (logged) when the broker
        does not answer now."""
        settings = self.ctx.settings
        try:
            published = await self._in_thread(read_published, settings, self.ctx.encoder)
        except KafkaException as exc:
            log.warning("model owner: the published model could not be read (%s); trying again", shown(exc))
            return None
        except ForeignModel as exc:
            exit_worker(self.ctx, exc.reason)
            return None
        self.owner = ModelOwner(published, settings.model_publish_interval_s, settings.seed_idle_s)
        log.info("model owner: version %d, updates applied up to offset %d",
                 published.version, published.model.updates_offset)
        return self.owner

    async def receive(self, raw: bytes, offset: int) -> None:
        """Learn the update at ``offset``; one the owner cannot read or must not learn becomes a
        dead letter instead. Waits (unacknowledged) while the published model cannot be read,
        unless the worker stops itself (another cluster, a broker gone for good: broker_watch)."""
        while (owner := self.owner or await self._load()) is None:
            if self.ctx.exit_reason:
                return
            await asyncio.sleep(OWNER_RETRY_S)
        source = Source(self.ctx.settings.topic_model_updates, 0, offset)
        version = owner.segmentation.version
        try:
            update = ModelUpdate.from_bytes(raw)
            learned = await self._in_thread(owner.receive, update, offset)
        except (RefusedUpdate, ValueError, KeyError, TypeError) as exc:
            await send_dead_letter(self.ctx, DeadLetter(f"model update refused: {shown(exc)}", source, b"update", raw))
            return
        self.ctx.tallies.updates_learned += learned
        self._note_model_event(owner, version)
        if learned and owner.publish_due(update):
            await self.publish()

    async def tick(self) -> None:
        """While this worker owns the model: seed early if the input went quiet, and publish."""
        if self.active and self.ctx.settled:
            owner = self.owner or await self._load()
            if owner is not None:
                version = owner.segmentation.version
                await self._in_thread(owner.tick)
                self._note_model_event(owner, version)
        await self.publish()

    def _note_model_event(self, owner: ModelOwner, version_before: int) -> None:
        """A seed, refresh, re-seed or rebuild that made a new version: one log line, counted."""
        model = owner.segmentation.model
        if model.version == version_before or not model.history or model.history[-1]["version"] != model.version:
            return
        event = model.history[-1]
        kind = "reseed" if event["event"] == "refresh" and event.get("reseeded_empty") else event["event"]
        self.ctx.tallies.model_events[kind] += 1
        detail = {k: v for k, v in event.items() if k in ("users", "reservoir", "moved_users", "reseeded_empty", "cold", "inertia_after")}
        log.info("model %s: version %d %s", kind, model.version, detail)

    async def publish(self) -> None:
        """Send a snapshot if the model changed since the last one (a new version is logged)."""
        if self.owner is None:
            return
        snapshot = await self._in_thread(self.owner.snapshot)
        if snapshot is not None:
            await self.ctx.topics.model.send(key=b"model", value=snapshot)
            version = self.owner.segmentation.version
            if version != self.published_version:
                log.info("model published: version %d (%d bytes) on %s", version, len(snapshot), self.ctx.settings.topic_model)
                self.published_version = version


async def follow(ctx: WorkerContext, new_version: asyncio.Event) -> None:
    """Adopt every newer version published on the model topic; a new one calls for a sweep.
    One that another encoder made stops the worker."""
    settings = ctx.settings
    reader = own_reader(settings)
    await reader.start()
    try:
        tp = TopicPartition(settings.topic_model, 0)
        reader.assign([tp])
        end = (await reader.end_offsets([tp]))[tp]
        reader.seek(tp, max(end - 1, 0))
        params = segmentation_params(settings)
        while True:
            batches = await reader.getmany(timeout_ms=1000)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            published = _readable(records[-1].value, params, ctx.local.model.dim)
            why = mismatch(published.encoder, ctx.encoder.fingerprint)
            if why:
                exit_worker(ctx, foreign_model_reason(settings.topic_model, why))
                return
            if ctx.local.adopt(published):
                new_version.set()
            ctx.recent.adopted(ctx.local.version, ctx.local.model.sizes, time.time())
    finally:
        await reader.stop()


def _readable(raw: bytes, params: SegmentationParams, dim: int) -> Segmentation:
    """A published snapshot; an unreadable record (another producer's) is skipped, logged."""
    try:
        return Segmentation.from_bytes(raw, params, dim)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("skipping an unreadable record on the model topic: %s", shown(exc))
        return Segmentation.new(params, dim)  # never newer than the copy: not adopted


async def sweep(ctx: WorkerContext, sweeper: Sweeper) -> bool:
    """Re-assign the users due for this version (everyone for a replay's final membership), a
    chunk at a time; between chunks a live sweep pauses for batches and timers, so that it takes
    at most ``sweep_share`` of the time (stream/core/sweep.py); False when stopping."""
    final = ctx.replay.final_version_arrived(ctx.local.model.rebuilt_version)
    chunks = sweeper.chunks(ctx.replay.sweep_mode(), final)
    changed = 0
    while True:
        async with ctx.rows:
            started = time.perf_counter()
            if ctx.app.should_stop:
                return False
            result = next(chunks, None)
            if result is None:
                break
            ctx.counters.swept += result.swept
            changed += len(result.changes)
            await emit(ctx, result)
            busy = time.perf_counter() - started
        await asyncio.sleep(0.0 if final else pause_after(busy, ctx.settings.sweep_share))
    if final:
        ctx.replay.finished = True
        log.info("replay: final membership of %d users published; now live", changed)
    return True


def register(ctx: WorkerContext, gaps: DeliveryGaps) -> OwnerShell:
    """The owner's agent and timer, and the follow and sweep tasks (hand-overs:
    stream/worker/rebalance.py)."""
    app, settings = ctx.app, ctx.settings
    shell = OwnerShell(ctx)
    sweeper = Sweeper(ctx.pipeline, ctx.users, settings.sweep_users)
    new_version = asyncio.Event()

    @app.agent(ctx.topics.updates, name="own-model")
    async def own_model(stream: faust.StreamT) -> None:
        """Runs wherever Kafka assigns the one partition of the updates topic: the owner."""
        async for event in stream.events():
            for record in await with_skipped(ctx, gaps, [event.message], "owning the model"):
                await shell.receive(record.value, record.offset)
                ctx.counters.updates_received += 1

    @app.timer(interval=settings.model_publish_interval_s)
    async def publish_model() -> None:
        await survive("the model owner's tick", shell.tick())

    @app.task
    async def follow_model() -> None:
        await follow(ctx, new_version)

    @app.task
    async def sweep_on_new_versions() -> None:
        while True:
            await new_version.wait()
            new_version.clear()
            if not ctx.settled:
                await asyncio.sleep(0.5)
                new_version.set()
            elif not await survive("a sweep", sweep(ctx, sweeper), True, ctx.failures):
                return

    return shell
