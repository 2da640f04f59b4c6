"""The agents that consume the inputs: events into user state, items into the catalogue.

Both micro-batch with ``take_events`` (acks after the batch is applied) and run the encoder
in a thread, so the event loop, the timers and the web server stay responsive meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable

import faust
import numpy as np

from models.encoder import Encoder
from models.readability import UNREADABLE_SHARE
from models.registry import unreadable_advice
from models.text import clean_text
from stream.contract.records import InvalidEvent, Item, Message, shown
from stream.core.catalogue import CatalogueItem, catalogue_text, usable_vector
from stream.worker import replay_hooks
from stream.worker.context import Tallies, WorkerContext
from stream.worker.failures import until_applied
from stream.worker.gaps import DeliveryGaps, with_skipped
from stream.worker.output import emit, send_dead_letter
from stream.worker.repartition import arrived, forward

log = logging.getLogger("segstream")

ITEM_BATCH = 64


class EncoderThread:
    """The encoder off the event loop, in one thread of its own."""

    def __init__(self, encoder: Encoder, batch_size: int, tallies: Tallies, model: str) -> None:
        """``model``: the encoder as the settings name it, for the warning about unreadable text."""
        self.encoder = encoder
        self.batch_size = batch_size
        self.tallies = tallies
        self.model = model
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")

    async def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        vectors = await loop.run_in_executor(self.executor, lambda: self.encoder.encode(texts, batch_size=self.batch_size))
        self.tallies.encoded(len(texts), time.perf_counter() - started)
        if self.encoder.readability.should_warn():
            log.warning(
                "the encoder (%s) cannot read much of this input: %.0f%% of the last %d texts are more than %.0f%% "
                "unknown tokens (a language its vocabulary lacks?); segments built on them mean little: %s",
                self.model, 100 * self.encoder.readability.recent_unreadable_share,
                len(self.encoder.readability.recent), 100 * UNREADABLE_SHARE, unreadable_advice(self.model),
            )
        return vectors


Step = Callable[[WorkerContext, "EncoderThread", list[Message]], Awaitable[None]]


async def apply_batch(ctx: WorkerContext, encoder: EncoderThread, messages: list[Message]) -> None:
    """Validate, forward other partitions' users, encode, fold into user states, assign, then
    write and publish."""
    await replay_hooks.catalogue_first(ctx)
    prepared = ctx.pipeline.prepare(messages, ctx.users)
    await forward(ctx, prepared.foreign)
    vectors = await encoder.encode(prepared.texts)
    async with ctx.rows:
        result = ctx.pipeline.apply(prepared, vectors, ctx.users, ctx.catalogue)
        await emit(ctx, result)
    ctx.counters.applied += result.applied
    ctx.counters.duplicates += result.duplicates
    ctx.counters.batches += 1
    await replay_hooks.after_batch(ctx, messages)


async def encode_items(ctx: WorkerContext, encoder: EncoderThread, messages: list[Message]) -> None:
    """Encode valid items into the item-vectors topic (and this worker's catalogue); dead-letter
    the others."""
    good: list[tuple[Item, str]] = []
    messages_of_good: list[Message] = []
    for m in messages:
        try:
            item, text = catalogue_text(m)
        except InvalidEvent as exc:
            await send_dead_letter(ctx, m.dead_letter(str(exc)))
            continue
        good.append((item, text))
        messages_of_good.append(m)
    vectors = await encoder.encode([text for _, text in good])
    sent = []
    for (item, _), vector, message in zip(good, vectors, messages_of_good):
        if not usable_vector(vector):
            await send_dead_letter(ctx, message.dead_letter("the encoder returned a vector that is not finite or is zero"))
            continue
        row = CatalogueItem(vector, item.categories, clean_text(item.title))
        sent.append(await ctx.topics.item_vectors.send(key=item.item_id.encode(), value=row.to_bytes()))
        ctx.catalogue.put(item.item_id, row)
    for delivery in sent:  # every worker's catalogue gets the item from the topic
        await delivery
    replay_hooks.after_items(ctx, messages)
    ctx.counters.items += len(good)
    log.info("catalogue: %d items encoded (batch of %d)", ctx.counters.items, len(messages))


async def applied(ctx: WorkerContext, encoder: EncoderThread, messages: list[Message], step: Step, where: str) -> None:
    """``step`` over ``messages``, retried in place while the environment fails
    (stream/worker/failures.py); a record's failure is raised."""
    await until_applied(ctx.failures, where, lambda: step(ctx, encoder, messages), lambda: ctx.app.should_stop)


async def one_by_one(ctx: WorkerContext, encoder: EncoderThread, messages: list[Message], step: Step, where: str) -> None:
    """A batch that failed for a reason of ours (a bug, a broken encoder, a record no check
    foresaw) is retried a record at a time, so that only the records that fail again become
    dead letters, with their own error (an applied one is recognised as applied)."""
    for m in messages:
        try:
            await applied(ctx, encoder, [m], step, where)
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("%s failed alone too: %s (%s:%d in %s)", m.source.to_doc(), shown(exc), where.filename, where.lineno, where.name)
            await send_dead_letter(ctx, m.dead_letter(f"failed: {shown(exc)}"))


def register(ctx: WorkerContext, gaps: DeliveryGaps) -> None:
    """The agents of events and items; ``gaps`` notes where each partition's next record should
    start (stream/worker/gaps.py)."""
    model = ctx.settings.model_path or ctx.settings.model
    encoder = EncoderThread(ctx.encoder, ctx.settings.encode_batch_size, ctx.tallies, model)
    batch, within = ctx.settings.batch_size, ctx.settings.batch_wait_s

    async def consume(stream: faust.StreamT, size: int, step: Step, where: str) -> None:
        # Faust acks a batch's events when the body of this loop ends, however it ends: each
        # event is applied or dead-lettered before it does (send_dead_letter stops the
        # worker rather than go on without the dead letter; a failing environment retries
        # the batch here, or exits without committing it).
        async for events in stream.take_events(size, within=within):
            records = [e.message for e in events]
            records = await with_skipped(ctx, gaps, records, where)  # stream/worker/gaps.py
            messages = [arrived(record, ctx.settings.topic_repartition) for record in records]
            try:
                await applied(ctx, encoder, messages, step, where)
            except Exception as exc:
                log.error("a batch of %d records failed (%s); retrying them one by one", len(messages), shown(exc))
                ctx.pipeline.census.forget(list(ctx.pipeline.census.counts))  # counted again from the rows
                await one_by_one(ctx, encoder, messages, step, where)

    @ctx.app.agent(ctx.topics.inputs, name="apply-events")
    async def apply_events(stream: faust.StreamT) -> None:
        await consume(stream, batch, apply_batch, "applying events")

    @ctx.app.agent(ctx.topics.items, name="encode-items")
    async def encode_catalogue(stream: faust.StreamT) -> None:
        await consume(stream, ITEM_BATCH, encode_items, "encoding items")
