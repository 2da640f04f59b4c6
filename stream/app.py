"""The Faust shell: topics, tables, agents and web views wired around the pipeline.

Flow: ``reviews``/``behaviors`` -> :class:`~stream.pipeline.Pipeline` (validate, encode off the
event loop, update the user's row in the ``users`` table, assign with this worker's copy of the
model) -> ``segment-changes`` and ``segment-membership``; anything unusable -> ``dead-letters``.
Each batch's :class:`~models.segmentation.ModelUpdate` goes to the one-partition
``segment-model-updates`` topic; the worker Kafka gives that partition is the model's single
writer: it applies updates in order and publishes versions on the compacted ``segment-model``
topic. Every worker follows that topic, adopts new versions and sweeps its users. The ``items``
agent encodes the catalogue into a global table that every worker reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
import numpy as np
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.web import Request, Response
from threadpoolctl import ThreadpoolController

from models.encoder import Encoder
from models.segmentation import ModelUpdate, Segmentation, new_segmentation
from stream.catalogue import CatalogueItem
from stream.config import Settings
from stream.faust_tuning import adapt_faust_consumer
from stream.kafka import read_last_value
from stream.pipeline import BatchResult, Message, Pipeline, SweepCursor, catalogue_text
from stream.records import InvalidEvent
from stream.replay import ReplayTracker
from stream.stores import key_partition, use_key_partitioned_rocksdb
from stream.user_state import UserState

log = logging.getLogger("segstream")
T = TypeVar("T")

ITEM_BATCH = 64
REPLAY_LOG_EVERY_S = 5.0
SWEEP_CHUNK = 250  # users re-assigned between two yields to the event loop


@dataclass
class Counters:
    """Process-local throughput counters served at /healthz."""

    started: float = field(default_factory=time.time)
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    changes: int = 0
    items: int = 0
    batches: int = 0
    swept: int = 0
    updates_applied: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "started"} | {
            "uptime_s": round(time.time() - self.started, 1)
        }


def load_segmentation(settings: Settings, dim: int) -> Segmentation:
    """The last published model and profiles, or new ones when the topic is empty."""
    segmentation = new_segmentation(settings, dim)
    raw = read_last_value(settings.bootstrap, settings.topic_model)
    if raw is None:
        return segmentation
    try:
        segmentation.restore(raw)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise SystemExit(
            f"{settings.topic_model} does not hold a model this worker can use ({exc}). Use another "
            "SEGSTREAM_APP_ID and SEGSTREAM_TOPIC_MODEL for a different configuration."
        ) from exc
    log.info("model loaded: version %s, seeded=%s", segmentation.version, segmentation.model.seeded)
    return segmentation


def create_app(
    settings: Settings, encoder: Encoder, segmentation: Segmentation, replay: ReplayTracker | None = None
) -> faust.App:
    """A Faust app for ``settings`` that encodes with ``encoder``, assigns with its copy
    ``segmentation`` of the published model, and, while replaying, follows ``replay``."""
    adapt_faust_consumer(settings.bootstrap, settings.fetch_max_wait_ms, replay.start if replay else None)
    use_key_partitioned_rocksdb()
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 4,
        broker_rebalance_timeout=settings.session_timeout_s,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        producer_compression_type="lz4",
        autodiscover=False,
    )
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    inputs = app.topic(*settings.input_topics, **raw)
    items_topic = app.topic(settings.topic_items, **raw)
    changes_topic = app.topic(settings.topic_changes, **raw)
    membership_topic = app.topic(settings.topic_membership, **raw)
    dead_topic = app.topic(settings.topic_dead_letters, **raw)
    model_topic = app.topic(settings.topic_model, partitions=1, **raw)
    updates_topic = app.topic(settings.topic_model_updates, partitions=1, **raw)
    # use_partitioner: a row goes to the changelog partition of its key (murmur2, as the input
    # producers use), not to the partition of whichever event in the micro-batch is current;
    # it also lets the sweep task write rows outside any event.
    # key_type/value_type bytes make Faust pick the raw codec for the changelogs.
    binary = {"key_type": bytes, "value_type": bytes, "partitions": settings.partitions, "use_partitioner": True}
    users = app.Table("users", **binary)
    item_vectors = app.GlobalTable("item-vectors", **binary)

    local = segmentation  # this worker's copy: assigns and serves; only the owner writes
    pipeline = Pipeline(settings, local, replay.until if replay else None)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
    counters = Counters()
    owner = ModelOwner(settings, model_topic)
    cursor = SweepCursor(settings.sweep_users)
    new_version = asyncio.Event()
    sweeping = asyncio.Lock()  # held while a sweep chunk writes rows and sends their changes

    async def encode(texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, encoder.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            executor, lambda: encoder.encode(texts, batch_size=settings.encode_batch_size)
        )

    def load_state(user_id: str) -> UserState | None:
        stored = users.get(user_id.encode())
        return None if stored is None else UserState.from_bytes(stored)

    def catalogue(item_id: str) -> CatalogueItem | None:
        stored = item_vectors.get(item_id.encode())
        return None if stored is None else CatalogueItem.from_bytes(stored)

    async def send_dead(key: bytes | None, record: dict[str, Any]) -> None:
        """Publish one (key, record) pair, as Message.dead_letter and BatchResult give them."""
        counters.dead_letters += 1
        log.warning("dead letter from %s: %s", record["source"], record["error"])
        await dead_topic.send(key=key, value=json.dumps(record).encode())

    async def emit(result: BatchResult) -> None:
        """Write the rows, then publish changes, memberships, dead letters and the update."""
        for user_id, state in result.states.items():
            users[user_id.encode()] = state.to_bytes()
        for change in result.changes:
            if replay is not None and replay.suppress and change["mode"] == "replay" and change["reason"] != "replay":
                continue
            key, value = change["user_id"].encode(), json.dumps(change).encode()
            await changes_topic.send(key=key, value=value)
            await membership_topic.send(key=key, value=value)
            counters.changes += 1
        for key, record in result.dead_letters:
            await send_dead(key, record)
        if result.update is not None:
            await updates_topic.send(key=b"update", value=result.update.to_bytes())

    async def apply_batch(messages: list[Message]) -> None:
        while replay is not None and not replay.catalogue_ready:
            await asyncio.sleep(0.2)  # a replay encodes the catalogue first (stream/replay.py)
        prepared = pipeline.prepare(messages)
        vectors = await encode(prepared.texts)
        result = pipeline.apply(prepared, vectors, load_state, catalogue)
        await emit(result)
        counters.applied += result.applied
        counters.duplicates += result.duplicates
        counters.batches += 1
        if replay is not None and not replay.finished:
            for m in messages:
                replay.observe(m.topic, m.partition, m.offset)
            await finish_replay_if_caught_up()

    async def dead_letter_batch(messages: list[Message], exc: Exception) -> None:
        """A batch that failed for a reason of ours (a bug, a broken encoder) is not lost."""
        log.exception("a batch of %d events failed", len(messages))
        for m in messages:
            await send_dead(*m.dead_letter(f"batch failed: {exc!r}"))

    @app.agent(inputs, name="apply-events")
    async def apply_events(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_wait_s):
            messages = [Message.of(e.message) for e in events]
            try:
                await apply_batch(messages)
            except Exception as exc:
                await dead_letter_batch(messages, exc)

    # --- the model: one owner writes, every worker follows and sweeps ------------------------

    @app.agent(updates_topic, name="own-model")
    async def own_model(stream: faust.StreamT) -> None:
        """Runs wherever Kafka assigns the one partition of the updates topic: the owner."""
        async for event in stream.events():
            await owner.apply(ModelUpdate.from_bytes(event.message.value), event.message.offset, local.model.dim)
            counters.updates_applied += 1

    @app.on_partitions_revoked.connect
    async def publish_before_handing_over(sender: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        await owner.flush()

    @app.on_partitions_assigned.connect
    async def note_ownership(sender: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        owner.assigned(any(tp.topic == settings.topic_model_updates for tp in assigned))

    @app.timer(interval=settings.model_publish_interval_s)
    async def publish_model() -> None:
        await owner.flush()

    @app.task
    async def follow_model() -> None:
        """Adopt every newer version published on the model topic, then sweep."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=settings.fetch_max_wait_ms
        )
        await reader.start()
        try:
            tp = TopicPartition(settings.topic_model, 0)
            reader.assign([tp])
            end = (await reader.end_offsets([tp]))[tp]
            reader.seek(tp, max(end - 1, 0))
            while True:
                batches = await reader.getmany(timeout_ms=1000)
                records = [r for rs in batches.values() for r in rs]
                if not records:
                    continue
                published = new_segmentation(settings, local.model.dim).restore(records[-1].value)
                if local.adopt(published):
                    new_version.set()
        finally:
            await reader.stop()

    def local_user_keys() -> list[bytes]:
        """Keys of the users of this worker's input partitions (not of standby replicas)."""
        active = {tp.partition for tp in app.consumer.assignment() if tp.topic in settings.input_topics}
        return [k for k in users.keys() if key_partition(k, settings.partitions) in active]

    @app.task
    async def sweep_on_new_versions() -> None:
        """Re-assign ``sweep_users`` users per new version (all of them for a replay's final
        membership), so memberships follow the centroids with bounded work per version."""
        while True:
            await new_version.wait()
            new_version.clear()
            if app.rebalancing or not app.tables.recovery.completed.is_set():
                await asyncio.sleep(0.5)
                new_version.set()
                continue
            final = replay is not None and replay.final_version_arrived(local.model.rebuilt_version)
            mode = "replay" if replay is not None and not replay.finished else "live"
            keys = local_user_keys() if final else cursor.next(local_user_keys)
            changed = 0
            for begin in range(0, len(keys), SWEEP_CHUNK):  # yield to batches and timers between chunks
                async with sweeping:
                    if app.should_stop:
                        return
                    chunk = keys[begin : begin + SWEEP_CHUNK]
                    states = [UserState.from_bytes(raw) for raw in map(users.get, chunk) if raw is not None]
                    result = pipeline.sweep(states, mode=mode, final=final)
                    counters.swept += len(states)
                    changed += len(result.changes)
                    await emit(result)
                await asyncio.sleep(0)
            if final:
                assert replay is not None
                replay.finished = True
                log.info("replay: final membership of %d users published; now live", changed)

    # --- replay -------------------------------------------------------------------------------

    async def finish_replay_if_caught_up() -> None:
        if replay is None or replay.finished or not replay.caught_up:
            return
        if not replay.suppress:
            replay.finished = True
            log.info("replay caught up: %s; now live", replay.progress())
        elif replay.rebuild_requested_at is None:
            replay.rebuild_requested_at = local.version
            log.info("replay caught up: %s; asking the model owner for a %s rebuild", replay.progress(), replay.rebuild)
            request = local.new_update(settings)
            request.stats.rebuild = replay.rebuild
            await updates_topic.send(key=b"update", value=request.to_bytes())

    if replay is not None:

        @app.timer(interval=REPLAY_LOG_EVERY_S)
        async def report_replay() -> None:
            if not replay.finished:
                await finish_replay_if_caught_up()  # also when there was nothing to replay
                log.info("replay: %s", replay.progress())

    # --- catalogue ----------------------------------------------------------------------------

    async def encode_catalogue(messages: list[Message]) -> None:
        good: list[tuple[str, str, tuple[str, ...]]] = []
        for m in messages:
            try:
                item, text = catalogue_text(m)
            except InvalidEvent as exc:
                await send_dead(*m.dead_letter(str(exc)))
                continue
            good.append((item.item_id, text, item.categories))
        vectors = await encode([text for _, text, _ in good])
        for (item_id, _, categories), vector in zip(good, vectors):
            item_vectors[item_id.encode()] = CatalogueItem(vector, categories).to_bytes()
        if replay is not None:
            for m in messages:
                replay.observe_item(m.topic, m.partition, m.offset)
        counters.items += len(good)
        log.info("catalogue: %d items encoded (batch of %d)", counters.items, len(messages))

    @app.agent(items_topic, name="encode-items")
    async def encode_items(stream: faust.StreamT) -> None:
        async for events in stream.take_events(ITEM_BATCH, within=settings.batch_wait_s):
            messages = [Message.of(e.message) for e in events]
            try:
                await encode_catalogue(messages)
            except Exception as exc:
                await dead_letter_batch(messages, exc)

    # --- HTTP -----------------------------------------------------------------------------------

    @app.page("/healthz")
    async def health(web: Any, request: Request) -> Response:
        model = local.model
        return web.json(
            {
                "status": "ok",
                # True once partitions are assigned and the tables recovered from changelogs.
                "ready": (not app.rebalancing) and app.tables.recovery.completed.is_set(),
                "input_partitions": sorted(
                    f"{tp.topic}:{tp.partition}"
                    for tp in app.consumer.assignment()
                    if tp.topic in settings.input_topics
                ),
                "catalogue_items": len(item_vectors),
                "model": {"version": model.version, "seeded": model.seeded, "k": model.k, "owner": owner.active},
                "replay": None if replay is None else replay.progress(),
                "encoder": {"providers": encoder.providers, "precision": encoder.precision, "dim": encoder.dim},
                "counters": counters.as_dict(),
            }
        )

    @app.page("/segments")
    async def segments(web: Any, request: Request) -> Response:
        model, profiles = local.model, local.profiles
        portraits = profiles.profiles(top=5)
        return web.json(
            {
                "model_version": model.version,
                "seeded": model.seeded,
                "users_waiting_for_seed": 0 if model.seeded else len(model.reservoir),
                "segments": [
                    {"id": i, "size": int(n), "label": portraits[i]["label"]} for i, n in enumerate(model.sizes)
                ],
                "model_events": model.events[-10:],
            }
        )

    @app.page("/segments/{segment}")
    async def segment(web: Any, request: Request, segment: str) -> Response:
        model, profiles = local.model, local.profiles
        if not segment.isdigit() or int(segment) >= model.k:
            return web.json({"error": f"no segment {segment!r}; ids are 0..{model.k - 1}"}, status=404)
        portrait = profiles.profile(int(segment), top=int(request.query.get("top", 10)))
        return web.json({"size": int(model.sizes[int(segment)]), "model_version": model.version, **portrait})

    @app.page("/users/{user_id}/recommendations")
    @app.table_route(table=users, match_info="user_id")
    async def recommendations(web: Any, request: Request, user_id: str) -> Response:
        try:
            k = max(1, min(100, int(request.query.get("k", 10))))
        except ValueError:
            return web.json({"error": "k must be a whole number"}, status=400)
        state = load_state(user_id)
        segment = None if state is None else state.segment
        items = local.profiles.popular_items(segment, k, frozenset() if state is None else state.acted_on)
        return web.json(
            {
                "user_id": user_id,
                "segment": segment,
                "source": "global popularity (cold user)" if segment is None else "segment popularity",
                "items": items,
            }
        )

    @app.page("/users/{user_id}")
    @app.table_route(table=users, match_info="user_id")
    async def user(web: Any, request: Request, user_id: str) -> Response:
        state = load_state(user_id)
        if state is None:
            return web.json({"error": f"unknown user {user_id!r}"}, status=404)
        return web.json(state.public_view())

    @app.on_before_shutdown.connect
    async def finish_before_shutdown(sender: faust.App, **kwargs: Any) -> None:
        """Before the producer stops: let a sweep chunk in flight send its changes (the next
        one sees ``should_stop``), and publish the model."""
        async with sweeping:
            await owner.flush()

    return app


class ModelOwner:
    """The single writer of the model, active in the worker that holds the updates partition.

    It loads the last published version when it becomes the owner, applies updates exactly
    once (by offset, recorded in the model), and publishes after changes at most once per
    interval, on the timer, and before it hands the partition over. Applying (a refresh is a
    k-means run) and serialising happen in one thread of their own, in order, so the event
    loop keeps serving batches, timers and HTTP meanwhile.
    """

    def __init__(self, settings: Settings, model_topic: faust.TopicT) -> None:
        self.settings = settings
        self.model_topic = model_topic
        self.segmentation: Segmentation | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-owner")
        self.thread_pools = ThreadpoolController()  # found once: a search per update held the GIL ~3 ms
        self.active = False
        self.dirty = False
        self.last = 0.0

    def assigned(self, owns: bool) -> None:
        self.active = owns
        if not owns:
            self.segmentation = None

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def apply(self, update: ModelUpdate, offset: int, dim: int) -> None:
        if self.segmentation is None:
            self.segmentation = await self._in_thread(load_segmentation, self.settings, dim)
            log.info("model owner: version %d, updates applied up to offset %d",
                     self.segmentation.version, self.segmentation.model.updates_offset)
        if not await self._in_thread(self._apply_on_one_core, self.segmentation, update, offset):
            return
        self.dirty = True
        if update.stats.rebuild is not None:
            await self.flush()  # a replay waits for it
        elif time.monotonic() - self.last >= self.settings.model_publish_interval_s:
            await self.flush()

    def _apply_on_one_core(self, segmentation: Segmentation, update: ModelUpdate, offset: int) -> bool:
        """A refresh's k-means on one core (BLAS/OpenMP), leaving the others to the batches."""
        with self.thread_pools.limit(limits=1):
            return segmentation.apply(update, offset)

    async def flush(self) -> None:
        if not self.dirty or self.segmentation is None:
            return
        self.dirty = False
        self.last = time.monotonic()
        snapshot = await self._in_thread(self.segmentation.to_bytes)
        await self.model_topic.send(key=b"model", value=snapshot)
