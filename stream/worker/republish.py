"""Last change events sent again for the partitions a worker restored after it stopped mid-write.

Rows and change events are not written atomically: a worker killed after a batch's, a sweep's or
a release's rows reached the changelog, but before its change events left, would leave those
users' membership records behind their rows. A redelivered event sends its user's last change
again (stream/core/pipeline.py); sweeps and releases have no event to redeliver. So when a data
dir restores a partition its worker was writing when it died (stream/core/recovery_plan.py),
every user's last change there is sent again once the worker holds the partition: the same
bytes, which consumers already have or were missing.
"""

from __future__ import annotations

import logging

from stream.core.user_state import UserState
from stream.kafka import key_partition
from stream.worker.context import WorkerContext, survive
from stream.worker.output import publish_change
from stream.worker.unflushed import UnflushedPartitions

log = logging.getLogger("segstream")

CHECK_EVERY_S = 1.0
CHUNK = 500  # users re-sent between two turns of the event loop


async def republish(ctx: WorkerContext, unflushed: UnflushedPartitions) -> None:
    due = unflushed.republish & ctx.users.active_partitions()
    if not due:
        return
    table = ctx.users.table
    user_ids = [
        key.decode() for key, raw in table.items()
        if key_partition(key, ctx.settings.partitions) in due and UserState.has_last_change(raw)
    ]
    for begin in range(0, len(user_ids), CHUNK):
        async with ctx.rows:  # read and sent in the order any other writer of these users keeps
            for user_id in ctx.users.held(user_ids[begin : begin + CHUNK]):
                state = ctx.users.get(user_id)
                if state is not None and state.last_change is not None:
                    await publish_change(ctx, state.last_change)
                    ctx.counters.resent += 1
    unflushed.republish -= due
    log.info("sent the last change of %d users of partitions %s again: their worker had stopped mid-write",
             len(user_ids), sorted(due))


def register(ctx: WorkerContext, unflushed: UnflushedPartitions | None) -> None:
    if unflushed is None:  # tables in memory: a restarted worker restores from the changelog anyway
        return

    @ctx.app.timer(interval=CHECK_EVERY_S)
    async def republish_restored() -> None:
        if ctx.settled:
            await survive("sending last changes again", republish(ctx, unflushed), failures=ctx.failures)
