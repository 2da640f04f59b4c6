"""The Faust shell: topics, tables, agents and web views wired around the pipeline.

Flow: ``reviews``/``behaviors`` -> :class:`~stream.pipeline.Pipeline` (validate, encode off the
event loop, update the user's row in the ``users`` table, move the model, assign) ->
``segment-changes``; anything unusable -> ``dead-letters``. The ``items`` agent encodes the
catalogue into a global table that every worker reads. The model has one writer and is
published on the compacted ``segment-model`` topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust
import numpy as np
from faust.web import Request, Response

from models.clustering import StreamingKMeans, new_model
from models.encoder import Encoder
from models.profiles import SegmentProfiles, new_profiles
from stream.catalogue import CatalogueItem
from stream.config import Settings
from stream.faust_tuning import adapt_faust_consumer
from stream.kafka import read_last_value
from stream.pipeline import Message, Pipeline, catalogue_text
from stream.records import InvalidEvent
from stream.stores import use_key_partitioned_rocksdb
from stream.user_state import UserState

log = logging.getLogger("segstream")

ITEM_BATCH = 64


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

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "started"} | {
            "uptime_s": round(time.time() - self.started, 1)
        }


@dataclass
class Segmentation:
    """What the single model owner keeps and publishes: centroids and segment profiles."""

    model: StreamingKMeans
    profiles: SegmentProfiles

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"model": self.model.to_bytes().decode(), "profiles": self.profiles.to_bytes().decode()}
        ).encode()


def load_segmentation(settings: Settings, dim: int) -> Segmentation:
    """The last published model and profiles, or new ones when the topic is empty."""
    segmentation = Segmentation(new_model(settings, dim), new_profiles(settings))
    raw = read_last_value(settings.bootstrap, settings.topic_model)
    if raw is None:
        return segmentation
    try:
        doc = json.loads(raw)
        segmentation.model.restore(doc["model"].encode())
        segmentation.profiles = SegmentProfiles.from_bytes(doc["profiles"].encode())
    except (ValueError, KeyError, AttributeError) as exc:
        raise SystemExit(
            f"{settings.topic_model} does not hold a model this worker can use ({exc}). Use another "
            "SEGSTREAM_APP_ID and SEGSTREAM_TOPIC_MODEL for a different configuration."
        ) from exc
    log.info("model loaded: version %s, seeded=%s", segmentation.model.version, segmentation.model.seeded)
    return segmentation


def create_app(settings: Settings, encoder: Encoder, segmentation: Segmentation) -> faust.App:
    """A Faust app for ``settings`` that encodes with ``encoder`` and owns ``segmentation``."""
    model, profiles = segmentation.model, segmentation.profiles
    adapt_faust_consumer(settings.bootstrap, settings.fetch_max_wait_ms)
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
    dead_topic = app.topic(settings.topic_dead_letters, **raw)
    model_topic = app.topic(settings.topic_model, partitions=1, **raw)
    # use_partitioner: a row goes to the changelog partition of its key (murmur2, as the input
    # producers use), not to the partition of whichever event in the micro-batch is current.
    # key_type/value_type bytes make Faust pick the raw codec for the changelogs.
    binary = {"key_type": bytes, "value_type": bytes, "partitions": settings.partitions, "use_partitioner": True}
    users = app.Table("users", **binary)
    item_vectors = app.GlobalTable("item-vectors", **binary)

    pipeline = Pipeline(settings, model, profiles)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")
    counters = Counters()
    publisher = ModelPublisher(segmentation, model_topic, settings.model_publish_interval_s)

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

    async def apply_batch(messages: list[Message]) -> None:
        prepared = pipeline.prepare(messages)
        vectors = await encode(prepared.texts)
        result = pipeline.apply(prepared, vectors, load_state, catalogue)
        for user_id, state in result.states.items():
            users[user_id.encode()] = state.to_bytes()
        for change in result.changes:
            await changes_topic.send(key=change["user_id"].encode(), value=json.dumps(change).encode())
        for key, record in result.dead_letters:
            await send_dead(key, record)
        counters.applied += result.applied
        counters.duplicates += result.duplicates
        counters.changes += len(result.changes)
        counters.batches += 1
        if result.model_changed:
            await publisher.changed()

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

    @app.timer(interval=settings.model_publish_interval_s)
    async def publish_model() -> None:
        await publisher.flush()

    @app.page("/healthz")
    async def health(web: Any, request: Request) -> Response:
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
                "model": {"version": model.version, "seeded": model.seeded, "k": model.k},
                "encoder": {"providers": encoder.providers, "dim": encoder.dim},
                "counters": counters.as_dict(),
            }
        )

    @app.page("/segments")
    async def segments(web: Any, request: Request) -> Response:
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
        items = profiles.popular_items(segment, k, frozenset() if state is None else state.acted_on)
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
    async def publish_model_on_shutdown(sender: faust.App, **kwargs: Any) -> None:
        await publisher.flush()

    return app


class ModelPublisher:
    """Publishes the model after changes, at most once per interval, and on the timer."""

    def __init__(self, segmentation: Segmentation, topic: faust.TopicT, interval_s: float) -> None:
        self.segmentation = segmentation
        self.topic = topic
        self.interval_s = interval_s
        self.dirty = False
        self.last = 0.0

    async def changed(self) -> None:
        self.dirty = True
        if time.monotonic() - self.last >= self.interval_s:
            await self.flush()

    async def flush(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        self.last = time.monotonic()
        await self.topic.send(key=b"model", value=self.segmentation.to_bytes())
