"""What a worker writes: user rows, change events, memberships, dead letters, model updates."""

from __future__ import annotations

import dataclasses
import logging
import os

from models.segmentation import ModelUpdate
from stream.contract.records import DeadLetter, shown
from stream.core.pipeline import BatchResult
from stream.worker.context import WorkerContext

log = logging.getLogger("segstream")


async def emit(ctx: WorkerContext, result: BatchResult) -> None:
    """Write the rows, then publish changes and memberships (those a replay does not hold
    back), dead letters and the update for the owner."""
    ctx.users.put_many(result.states.values())
    for change in result.changes:
        if not ctx.replay.publishes(change):
            continue
        key, value = change.user_id.encode(), change.to_bytes()
        await ctx.topics.changes.send(key=key, value=value)
        await ctx.topics.membership.send(key=key, value=value)
        ctx.counters.changes += 1
    for letter in result.dead_letters:
        await send_dead_letter(ctx, letter)
    if result.update is not None:
        await send_update(ctx, result.update)


async def send_dead_letter(ctx: WorkerContext, letter: DeadLetter) -> None:
    """Publish a dead letter; when even one without the original bytes cannot be sent, stop
    the process at once: going on would commit past an event that is nowhere."""
    ctx.counters.dead_letters += 1
    log.warning("dead letter from %s: %s", letter.source.to_doc(), shown(letter.error))
    try:
        await ctx.topics.dead_letters.send(key=letter.key, value=letter.to_bytes())
    except Exception as first:
        bare = dataclasses.replace(letter, key=None, value=None, error=f"{letter.error} (the original bytes could not be sent: {shown(first)})")
        try:
            await ctx.topics.dead_letters.send(key=None, value=bare.to_bytes())
        except Exception as exc:
            log.critical("a dead letter from %s could not be sent (%s); exiting without committing it",
                         letter.source.to_doc(), shown(exc))
            os._exit(70)


async def send_update(ctx: WorkerContext, update: ModelUpdate) -> None:
    await ctx.topics.updates.send(key=b"update", value=update.to_bytes())
