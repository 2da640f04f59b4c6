"""What a worker writes: user rows, change events, memberships, dead letters, model updates."""

from __future__ import annotations

import dataclasses
import logging
import os

from models.segmentation import ModelUpdate
from stream.contract.changes import SegmentChange
from stream.contract.records import DeadLetter, shown
from stream.core.pipeline import BatchResult
from stream.worker.context import WorkerContext

log = logging.getLogger("segstream")


async def emit(ctx: WorkerContext, result: BatchResult) -> None:
    """Write the rows, then publish changes and memberships (those a replay does not hold
    back, and the last ones of users whose events came again), dead letters and the update for
    the owner. Call it holding ``ctx.rows`` since the
    rows were read (a rebalance waits for it, then flushes: stream/worker/rebalance.py)."""
    ctx.users.put_many(result.states.values())
    for change in result.changes:
        if not ctx.replay.publishes(change):
            continue
        await publish_change(ctx, change)
        ctx.counters.changes += 1
        ctx.tallies.changes[(change.reason, change.mode)] += 1
        ctx.tallies.moved(change.previous_segment, change.segment)
        ctx.recent.changed(change.to_doc())
    for change in result.resent:
        await publish_change(ctx, change)
        ctx.counters.resent += 1
    for letter in result.dead_letters:
        await send_dead_letter(ctx, letter)
    if result.update is not None:
        await send_update(ctx, result.update)


async def publish_change(ctx: WorkerContext, change: SegmentChange) -> None:
    key, value = change.user_id.encode(), change.to_bytes()
    await ctx.topics.changes.send(key=key, value=value)
    await ctx.topics.membership.send(key=key, value=value)


async def send_dead_letter(ctx: WorkerContext, letter: DeadLetter) -> None:
    """Publish a dead letter; when even one without the original bytes cannot be sent, stop
    the process at once: going on would commit past an event that is nowhere."""
    ctx.counters.dead_letters += 1
    ctx.tallies.dead_letters[(reason_of(letter.error), letter.source.topic)] += 1
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


# A dead letter's reason for /metrics: a bounded label, from the first of these its error starts with.
REASONS = (
    ("ts", "event_time"),
    ("event time is more than", "beyond_dedup_horizon"),
    ("item text is empty", "empty_text"),  # before "item ", which it also starts with
    ("item ", "held_too_long"),
    ("the encoder returned", "encoder_output"),
    ("model update refused", "model_update_refused"),
    ("failed:", "processing_failed"),
    ("message key", "key_not_id"),
    ("no parser for topic", "unknown_topic"),
    ("review text is empty", "empty_text"),
    ("empty message value", "empty_value"),
    ("value", "not_json"),
)


def reason_of(error: str) -> str:
    """The label of a dead letter's error (``schema`` for the rest of the contract's checks)."""
    return next((label for prefix, label in REASONS if error.startswith(prefix)), "schema")


async def send_update(ctx: WorkerContext, update: ModelUpdate) -> None:
    await ctx.topics.updates.send(key=b"update", value=update.to_bytes())

