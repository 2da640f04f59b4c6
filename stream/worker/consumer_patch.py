"""Seven adjustments to Faust's aiokafka consumer.

1. Fetch wait: faust-streaming hard-codes ``fetch_max_wait_ms=1500``. Tansu answers a fetch
   only when that wait is over, so every round trip to a quiet partition costs 1.5 s. We set
   the value on the consumer Faust built, before it starts (aiokafka hands it to its fetcher
   in ``start()``), and a retry backoff of half a second: Faust passes none, and aiokafka's
   0.1 s made a broker outage a flood of ten failed requests a second.
2. End offsets: Tansu (0.6.0) reports a partition's end offset as the base offset of its last
   record *batch* + 1, not the last offset + 1. Faust recovers a table by reading its changelog
   up to that offset, so the rest of the last batch would be missing after a restart, and
   RocksDB recovery stops with a ConsistencyError. We confirm each reported end offset by
   reading from the record before it until the partition goes quiet; on Kafka that reads one
   record per partition, once per rebalance.
3. Rewind after recovery: Faust recovers tables before consuming its inputs, and input records
   fetched meanwhile are thrown away; then it seeks the inputs back to their committed offsets.
   aiokafka's ``seek_to_committed`` skips partitions whose committed offset is missing or 0, so
   a worker that crashed before its first commit would resume at the end of what it had fetched
   and skip the rest (cf. faust-streaming #596). We rewind those partitions to their beginning,
   which is what ``auto_offset_reset=earliest`` means. (1 and 2 are for Tansu; 3 for any broker.)
4. Replay start: a replaying worker seeks each input partition to the replay's start offset the
   first time it is assigned it (stream/replay.py).
5. Where reading starts: after each seek the agents learn where every partition's first record
   should be, so that a record Faust skips there is read again (stream/worker/gaps.py).
6. Acks in a rebalance: a Faust stream that reads a record while the flow is stopped (a
   rebalance, a shutdown) or that was fetched in an earlier generation skips it *and acks it*,
   so the next commit passes over a record no agent applied, and whoever is assigned the
   partition next starts after it (a user's first event missing after a worker joined, in the
   two-worker test). Such acks, and any an agent gives while the flow is stopped, release the
   record without marking its offset safe to commit: it is read again after the seek (an
   applied one is recognised as applied).
7. Changelog records fetched but not handed on: Faust drops what aiokafka returns for a
   partition it holds paused, and the rest of a fetch when the flow stops, yet aiokafka's
   position has moved past them. Faust seeks a standby's changelog partitions while they are
   paused, then resumes them without another seek: the records fetched in between were never
   read, and the standby that took over lacked those users' rows (seen in rolling restarts: a
   standby resumed at its changelog's end). Such a partition is moved back to the first record
   dropped, or to where it stands if that is earlier (a seek came in between); recovery skips
   what it has applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from stream.config import Settings
from stream.kafka import Cluster, confirmed_end_offsets
from stream.security import aiokafka_security

log = logging.getLogger("segstream")

RETRY_BACKOFF_MS = 500


def own_reader(settings: Settings) -> AIOKafkaConsumer:
    """A consumer of the worker's own, outside Faust's group (nothing committed), for topics
    every worker reads whole (the model, the catalogue), tuned and secured as Faust's is here."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        retry_backoff_ms=RETRY_BACKOFF_MS,
        **aiokafka_security(settings),
    )


def acked_in_flow(app: Any, message: Any) -> bool:
    """True for an ack an agent gave while the flow runs, in the generation the record was
    fetched in: only such an ack may let the record's offset be committed."""
    return bool(app.flow_control.is_active()) and message.generation_id == app.consumer_generation_id


def release_uncommitted(consumer: Any, message: Any) -> None:
    """Faust stops waiting for ``message`` (its stream is done with it) but its offset is not
    marked safe to commit."""
    with ack_lock:
        message.acked = True
        consumer._unacked_messages.discard(message)
        notify(consumer._waiting_for_ack)


def first_dropped(fetched: Mapping[Any, list[Any]], handed_on: Mapping[Any, int], changelogs: set[str]) -> dict[Any, int]:
    """For each changelog partition of ``fetched``, the first offset not handed on (records are in
    offset order, and Faust hands on a prefix of each partition's, which ``handed_on`` ends)."""
    dropped = {}
    for tp, records in fetched.items():
        last = handed_on.get(tp)
        if tp.topic in changelogs and records and (last is None or records[-1].offset > last):
            dropped[tp] = next(r.offset for r in records if last is None or r.offset > last)
    return dropped


class CheckedConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with adjustments 6 (acks) and 7 (dropped changelog records)."""

    _fetched: Mapping[TP, list[Any]] = {}

    async def _wait_next_records(self, timeout: float) -> Any:
        records, active = await super()._wait_next_records(timeout)
        self._fetched = records or {}
        return records, active

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        self._fetched = {}
        handed_on: dict[TP, int] = {}
        async for tp, message in super().getmany(timeout):
            handed_on[tp] = message.offset
            yield tp, message
        await self._rewind(first_dropped(self._fetched, handed_on, self.app.tables.changelog_topics))

    async def _rewind(self, dropped: Mapping[TP, int]) -> None:
        for tp, offset in dropped.items():
            try:
                position = await self.position(tp)
                back_to = offset if position is None else min(offset, position)
                await self.seek(tp, back_to)
                log.info("changelog %s[%d]: records from %d fetched but dropped by Faust; reading again from %d",
                         tp.topic, tp.partition, offset, back_to)
            except Exception as exc:  # revoked meanwhile: the next assignment seeks it anyway
                log.info("changelog %s[%d]: not moved back to %d (%s)", tp.topic, tp.partition, offset, exc)

    def ack(self, message: Any) -> bool:
        if acked_in_flow(self.app, message):
            return super().ack(message)
        release_uncommitted(self, message)
        return False


def adapt_faust_consumer(
    cluster: Cluster, fetch_max_wait_ms: int, start_offsets: Mapping[tuple[str, int], int] | None = None,
    on_seek: Callable[[dict[tuple[str, int], int]], None] = lambda positions: None,
) -> None:
    """Make every Faust aiokafka consumer created from now on use these adjustments.

    ``start_offsets`` (a replay's): where each input partition starts the first time this
    process is assigned it, instead of the committed offset. ``on_seek``: told where each
    partition that is not a changelog's reads from after every seek to the committed offsets
    (stream/worker/gaps.py).
    """
    starts = dict(start_offsets or {})

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            consumer._retry_backoff_ms = RETRY_BACKOFF_MS
            consumer._client._retry_backoff = RETRY_BACKOFF_MS / 1000
            return consumer

        async def seek_to_committed(self) -> Mapping[TP, int]:
            committed = dict(await super().seek_to_committed())
            consumer = self._ensure_consumer()
            for tp in consumer.assignment():
                start = starts.pop((tp.topic, tp.partition), None)
                if start is not None:
                    await self.call_thread(consumer.seek, tp, start)
                    committed[TP(tp.topic, tp.partition)] = start
            changelogs = self.consumer.app.tables.changelog_topics
            rewind = [tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs]
            positions = {
                (tp.topic, tp.partition): offset for tp, offset in committed.items() if offset and tp.topic not in changelogs
            }
            if rewind:
                await self.call_thread(self._ensure_consumer().seek_to_beginning, *rewind)
                beginnings = await self.call_thread(self._ensure_consumer().beginning_offsets, rewind)
                positions.update({(tp.topic, tp.partition): offset for tp, offset in beginnings.items()})
            on_seek(positions)
            return committed

        async def _highwaters(self, partitions: Iterable[TP]) -> Mapping[TP, int]:
            reported = await super()._highwaters(list(partitions))
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, confirmed_end_offsets, cluster, reported)

    class Consumer(CheckedConsumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    faust_aiokafka.Transport.Consumer = Consumer
