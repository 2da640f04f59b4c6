"""The catalogue every worker holds whole: the encoded items of the compacted
``{app_id}-item-vectors`` topic, read by each worker with a consumer of its own.

Not a Faust GlobalTable: with two workers or more, its changelog partitions stall part-way in
some of them (faust-streaming#283: a worker given only active changelog partitions never
resumes them after recovery), and behaviours wait for ever for items the catalogue has. Here
every worker reads every partition from the beginning at start, then follows; the worker that
encodes an item also puts it in its own copy at once. A restart reads the topic again (about
1.6 KB per item with 384 dimensions).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.structs import TopicPartition

from stream.core.catalogue import CatalogueRows
from stream.worker.consumer_patch import own_reader
from stream.worker.context import WorkerContext

log = logging.getLogger("segstream")


async def follow_catalogue(ctx: WorkerContext, catalogue: CatalogueRows) -> None:
    """Read every partition of the item-vectors topic from its start, then as items arrive."""
    settings = ctx.settings
    reader = own_reader(settings)
    await reader.start()
    try:
        topic = settings.topic_item_vectors
        while not (await reader.topics() and reader.partitions_for_topic(topic)):
            await asyncio.sleep(1.0)
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        ends = await reader.end_offsets(partitions)
        while True:
            batches = await reader.getmany(timeout_ms=1000)
            for record in (r for rs in batches.values() for r in rs):
                catalogue.put_row(record.key, record.value)
            if not catalogue.caught_up and all([await reader.position(tp) >= end for tp, end in ends.items()]):
                catalogue.caught_up = True
                log.info("catalogue: %d items read from %s", len(catalogue), topic)
    finally:
        await reader.stop()


def register(ctx: WorkerContext) -> None:
    @ctx.app.task
    async def read_catalogue() -> None:
        await follow_catalogue(ctx, ctx.catalogue)
