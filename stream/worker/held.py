"""Behaviours held for unknown items, released when their item reaches the catalogue.

Every second the worker looks up the items its users wait for (stream/core/waiting_items.py)
and applies the held behaviours of those that arrived, whichever worker encoded them (every
worker reads the whole catalogue). After a rebalance the index is rebuilt from this worker's
rows.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from stream.worker.context import WorkerContext, survive
from stream.worker.output import emit

log = logging.getLogger("segstream")

RELEASE_EVERY_S = 1.0
RELEASE_USERS = 500  # users released per check, so one check stays short
REBUILD_CHUNK = 1000  # rows read between two yields to the event loop


async def rebuild_index(ctx: WorkerContext) -> None:
    """Index the users of this worker's partitions who hold behaviours (a row's fixed fields
    say how many, so only those rows are decoded)."""
    waiting = ctx.pipeline.waiting
    waiting.clear()
    for n, user_id in enumerate(ctx.users.user_ids_holding()):
        state = ctx.users.get(user_id)
        if state is not None:
            waiting.note(state)
        if n % REBUILD_CHUNK == 0:
            await asyncio.sleep(0)
    totals = waiting.totals()
    if totals["users"]:
        log.info("held behaviours: %(behaviours)d of %(users)d users wait for %(items)d items", totals)


async def release(ctx: WorkerContext) -> None:
    """Apply the held behaviours whose item has arrived, for users this worker holds."""
    waiting = ctx.pipeline.waiting
    ready = waiting.arrived(ctx.catalogue.knows, RELEASE_USERS)
    if not ready:
        return
    mine = ctx.users.held(ready)
    for user_id in set(ready) - set(mine):
        waiting.forget(user_id)  # another worker holds them now
    async with ctx.rows:
        states = [s for s in map(ctx.users.get, mine) if s is not None]
        result = ctx.pipeline.release(states, ctx.catalogue)
        await emit(ctx, result)


def register(ctx: WorkerContext) -> None:
    stale = True  # the index is rebuilt once the worker is ready after a rebalance

    @ctx.app.on_partitions_assigned.connect
    async def index_after_rebalance(sender: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        nonlocal stale
        stale = True

    @ctx.app.timer(interval=RELEASE_EVERY_S)
    async def release_held() -> None:
        nonlocal stale
        if not ctx.ready:
            return
        if stale:
            stale = False
            await survive("rebuilding the index of held behaviours", rebuild_index(ctx))
        await survive("releasing held behaviours", release(ctx))
