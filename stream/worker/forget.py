"""Forgetting users in the worker (docs/privacy.md).

Two ways in, one way through: ``DELETE /users/{id}`` on the worker holding the user (routed
there like ``GET``), and the requests ``segstream forget`` publishes on ``{app_id}-forget``
(stream/forget.py), a topic partitioned like the users table, so the worker holding a user's
row reads the requests for that user. Each forgotten user's row is deleted (a tombstone in the
table's changelog), a ``forgotten`` change is published on the changes topic and a tombstone on
the membership topic, and the model owner is told to drop the user's vector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust

from stream.kafka import user_partition
from stream.worker.context import WorkerContext
from stream.worker.gaps import DeliveryGaps, with_skipped
from stream.worker.output import send_update

log = logging.getLogger("segstream")


async def forget_users(ctx: WorkerContext, user_ids: Sequence[str]) -> list[str]:
    """Erase ``user_ids`` (as stored: pseudonyms when ids are salted) from this worker and the
    model, once every record is delivered; the ones that had a row. Holding the rows, like any
    writer of them: a rebalance waits for it, then hands the tombstones over with the rest."""
    async with ctx.rows:
        result = ctx.pipeline.forget(user_ids, ctx.users)
        ctx.users.delete_many(user_ids)
        sent = []
        for change in result.changes:
            sent.append(await ctx.topics.changes.send(key=change.user_id.encode(), value=change.to_bytes()))
            ctx.counters.changes += 1
            ctx.tallies.changes[(change.reason, change.mode)] += 1
        for user_id in dict.fromkeys(user_ids):
            sent.append(await ctx.topics.membership.send(key=user_id.encode(), value=None))
        if result.update is not None:
            await send_update(ctx, result.update)
        for delivery in sent:
            await delivery
    found = [change.user_id for change in result.changes]
    log.info("forgot %d users (%d had a row)", len(set(user_ids)), len(found))
    return found


async def forget_held(ctx: WorkerContext, user_id: str) -> bool | None:
    """``DELETE /users/{id}``: forget the user if this worker holds them, and say whether they
    had a row; None when it does not hold them now (a request routed here as a rebalance began)."""
    async with ctx.rows:
        held = bool(ctx.users.held([user_id]))
    return bool(await forget_users(ctx, [user_id])) if held else None


def register(ctx: WorkerContext, gaps: DeliveryGaps) -> None:
    @ctx.app.agent(ctx.topics.forget, name="forget-users")
    async def forget_requests(stream: faust.StreamT) -> None:
        async for events in stream.take_events(ctx.settings.batch_size, within=ctx.settings.batch_wait_s):
            records = [e.message for e in events]
            records = await with_skipped(ctx, gaps, records, "forgetting users")
            # By the request's own partition: the agent applies a batch before its partition
            # goes, so during a rebalance too (the worker's held partitions are none then).
            keyed = [(bytes(r.key).decode(), r.partition) for r in records if r.key]
            here = [user for user, partition in keyed if user_partition(user, ctx.settings.partitions) == partition]
            if len(here) < len(keyed):
                log.warning("forget: %d requests on a partition other than their user's skipped", len(keyed) - len(here))
            if here:
                await forget_users(ctx, here)
