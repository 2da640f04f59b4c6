"""Behaviours held for unknown items, released when their item reaches the catalogue.

Every second the worker looks up the items its users wait for (stream/core/waiting_items.py)
and applies the held behaviours of those that arrived, whichever worker encoded them (every
worker reads the whole catalogue). After a rebalance the index is rebuilt from this worker's
rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

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
    """Apply the held behaviours whose item has arrived, for users this worker holds (asked
    holding the rows: a rebalance may have started while this waited for them)."""
    waiting = ctx.pipeline.waiting
    ready = waiting.arrived(ctx.catalogue.knows, RELEASE_USERS)
    if not ready:
        return
    async with ctx.rows:
        mine = ctx.users.held(ready)
        for user_id in set(ready) - set(mine):
            waiting.forget(user_id)  # another worker holds them now
        states = [s for s in map(ctx.users.get, mine) if s is not None]
        result = ctx.pipeline.release(states, ctx.catalogue)
        await emit(ctx, result)


def register(ctx: WorkerContext) -> Callable[[], None]:
    """The release timer; returns what marks the index stale (at an assignment: it is rebuilt
    once the worker is ready)."""
    stale = True

    def mark_stale() -> None:
        nonlocal stale
        stale = True

    @ctx.app.timer(interval=RELEASE_EVERY_S)
    async def release_held() -> None:
        nonlocal stale
        if not ctx.settled:
            return
        if stale:
            stale = False
            await survive("rebuilding the index of held behaviours", rebuild_index(ctx))
        await survive("releasing held behaviours", release(ctx), failures=ctx.failures)

    return mark_stale
