"""The census of this worker's users for the model owner (stream/core/census.py): counted from
the table when a partition arrives, kept by the pipeline as users move, sent with the batches'
updates, and sent again when the published sizes disagree with it (an update lost with a
killed owner, say)."""

from __future__ import annotations

import time

import numpy as np

from stream.worker.context import WorkerContext, survive
from stream.worker.output import send_update

CHECK_EVERY_S = 2.0
RESEND_AFTER_S = 10.0  # the owner publishes a census it got within its publish interval


def recount(ctx: WorkerContext) -> None:
    """Count the partitions this worker holds and has not counted; forget the others."""
    census = ctx.pipeline.census
    active = ctx.users.active_partitions()
    census.forget(set(census.counts) - active)
    missing = active - set(census.counts)
    if missing:
        for partition, segments in ctx.users.segments_by_partition(missing).items():
            census.count(partition, segments)


def published_differs(ctx: WorkerContext) -> bool:
    published = ctx.local.model.census
    counts = ctx.pipeline.census.counts
    return any(p not in published or not np.array_equal(published[p], c) for p, c in counts.items())


def register(ctx: WorkerContext) -> None:
    census = ctx.pipeline.census
    sent_at = -float("inf")

    async def send_census() -> None:
        nonlocal sent_at
        async with ctx.rows:
            recount(ctx)
        if not census.changed and published_differs(ctx) and time.monotonic() - sent_at >= RESEND_AFTER_S:
            census.changed = True
        if census.changed:
            update = ctx.local.new_update()
            update.stats.census = census.take()
            await send_update(ctx, update)
            sent_at = time.monotonic()

    @ctx.app.timer(interval=CHECK_EVERY_S)
    async def keep_sizes_true() -> None:
        if ctx.settled:
            await survive("sending the census of segment sizes", send_census(), failures=ctx.failures)
