"""Partitions coming and going, in one place: one ordered script for each moment.

Faust calls Kafka's revoke and assign callbacks and stops the process; each of those moments
runs one script here, over named participants, in the order written below. Nothing else in
the worker listens to those signals.

- **revoke** (a rebalance starts; Faust has already stopped the agents' batches):
  1. ``rows``: wait for the one writing rows (a sweep chunk, a held release, a recount) and
     keep the others out while the rest runs;
  2. ``producer``: flush every record put so far: the rows' changelog records, change events,
     forwards, updates;
  3. ``unflushed``: the rows of every partition this worker was writing are now in the
     changelog: unmark them (stream/worker/unflushed.py; marks a worker that died left stay
     until their partitions are wiped);
  4. ``census``: forget the counts of the input partitions that go;
  5. ``owner``: publish the model before the updates partition may go to another worker.
- **lost** (the flush of step 2 failed: the rows may not have reached the changelog): the
  partitions stay marked, so that this data dir wipes and restores them at its next assignment
  (stream/core/recovery_plan.py); steps 4 and 5 run as in a revoke.
- **assign** (Faust then recovers the tables; nothing is written before that is done):
  1. ``owner``: this worker owns the model if it got the updates partition;
  2. ``held``: the index of held behaviours is rebuilt from the rows once ready;
  3. ``positions``: the agents forget where each partition's next record should start
     (stream/worker/gaps.py): Faust seeks to the committed offsets.
- **shutdown** (Faust has drained the agents and is about to flush its producer):
  1. ``rows``: taken for good: no sweep, release or recount writes a row after this;
  2. ``owner``: publish the model;
  3. ``producer``: flush;
  4. ``unflushed``: unmark the partitions this worker was writing (not when the flush failed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust

from stream.contract.records import shown
from stream.worker.unflushed import UnflushedPartitions

log = logging.getLogger("segstream")


@dataclass
class Participants:
    """What the scripts act on; each field is one named participant."""

    rows: asyncio.Lock  # held by whoever reads and writes user rows
    flush: Callable[[], Awaitable[None]]  # the producer: every record put so far delivered
    unflushed: UnflushedPartitions | None  # None: the tables live in memory only
    forget_census: Callable[[set[int]], None]  # input partitions that went elsewhere
    publish_model: Callable[[], Awaitable[None]]  # the owner's snapshot, if this worker owns the model
    own_model: Callable[[bool], None]  # whether this worker holds the updates partition now
    held_stale: Callable[[], None]  # rebuild the index of held behaviours
    positions_reset: Callable[[], None]  # the agents' next offsets: Faust seeks to the committed ones


class Choreography:
    def __init__(self, parts: Participants, input_topics: tuple[str, ...], updates_topic: str) -> None:
        self.parts = parts
        self.input_topics = input_topics
        self.updates_topic = updates_topic

    async def revoke(self, revoked: set[Any]) -> None:
        async with self.parts.rows:
            if await self._flushed("handing partitions over"):
                self._unmark()
        self.parts.forget_census({tp.partition for tp in revoked if tp.topic in self.input_topics})
        await self.parts.publish_model()

    async def assign(self, assigned: set[Any]) -> None:
        self.parts.own_model(any(tp.topic == self.updates_topic for tp in assigned))
        self.parts.held_stale()
        self.parts.positions_reset()

    async def shutdown(self) -> None:
        await self.parts.rows.acquire()  # never released: the process is stopping
        await self.parts.publish_model()
        if await self._flushed("stopping"):
            self._unmark()

    async def _flushed(self, moment: str) -> bool:
        """Flush the producer; False (the lost script) when it fails."""
        try:
            await self.parts.flush()
        except Exception as exc:
            log.error("%s: the producer could not deliver what was put (%s); the partitions this worker was "
                      "writing stay marked and are restored from their changelogs when next assigned here",
                      moment, shown(exc))
            return False
        return True

    def _unmark(self) -> None:
        if self.parts.unflushed is not None:
            self.parts.unflushed.handed_over()


def register(app: faust.App, choreography: Choreography) -> None:
    """The only handlers of Faust's rebalance and shutdown signals."""

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        await choreography.revoke(revoked)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: faust.App, assigned: set[Any], **kwargs: Any) -> None:
        await choreography.assign(assigned)

    @app.on_before_shutdown.connect
    async def on_shutdown(sender: faust.App, **kwargs: Any) -> None:
        await choreography.shutdown()
