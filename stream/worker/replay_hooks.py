"""A replaying worker's steps around its batches: catalogue first, progress, catch-up, rebuild.

The decisions are :class:`~stream.core.replay_tracker.ReplayTracker`'s; this module waits,
logs and sends. A worker that replays nothing holds a finished tracker and every hook is a no-op.
"""

from __future__ import annotations

import asyncio
import logging

from stream.contract.records import Message
from stream.worker.context import WorkerContext, survive
from stream.worker.output import send_update

log = logging.getLogger("segstream")

REPORT_EVERY_S = 5.0


async def catalogue_first(ctx: WorkerContext) -> None:
    """A replay encodes the catalogue before it applies behaviours (stream/replay.py)."""
    while not ctx.replay.catalogue_ready:
        await asyncio.sleep(0.2)


async def after_batch(ctx: WorkerContext, messages: list[Message]) -> None:
    if ctx.replay.finished:
        return
    ctx.replay.observe_batch(message.source for message in messages)
    await next_step(ctx)


def after_items(ctx: WorkerContext, messages: list[Message]) -> None:
    for message in messages:
        ctx.replay.observe_item(message.source)


async def next_step(ctx: WorkerContext) -> None:
    """Once caught up: go on live, or ask the model owner for the final rebuild."""
    step = ctx.replay.next_step(ctx.local.version)
    if step == "live":
        log.info("%s; now live", ctx.replay.line())
    elif step == "rebuild":
        log.info("%s; asking the model owner for a %s rebuild", ctx.replay.line(), ctx.replay.rebuild)
        request = ctx.local.new_update()
        request.stats.rebuild = ctx.replay.rebuild
        await send_update(ctx, request)


def register(ctx: WorkerContext) -> None:
    """Progress every few seconds, which also ends a replay that had nothing to replay."""
    if not ctx.replay.replaying:
        return

    @ctx.app.timer(interval=REPORT_EVERY_S)
    async def report_replay() -> None:
        if not ctx.replay.finished:
            await survive("the replay's next step", next_step(ctx))
            log.info("%s", ctx.replay.line())
