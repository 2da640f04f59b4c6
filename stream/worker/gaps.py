"""Records Faust fetched but never delivered, read again before a batch is applied.

Faust's consumer loop can lose a fetched record: when it waits to hand one to the agents' queue
(a full queue, a full producer buffer) and that wait is cut short (``wait_first`` cancels it),
the record is marked read, and the jump to the next offset is then taken for a legitimate gap
(compaction, transaction markers) and committed past (faust/transport/consumer.py,
``_drain_messages`` and ``_add_gap``). Seen here after a restart that worked off a backlog: an
offset missing between two batches, committed, never applied.

So the agent checks every input partition's offsets as they arrive: when a batch starts past
where the last one ended, the missing offsets are read straight from the broker and applied with
the batch, in offset order (seen in the disk-full test: a skipped record applied before an
earlier one of its batch made that one look applied), before it is acknowledged. Offsets the
broker has no record for (a real gap) read as nothing. After an assignment, Faust seeks to the
committed offsets, and the consumer tells where each partition starts (the first records after a
rebalance were skipped too, in a two-worker test).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.structs import TopicPartition

from stream.config import Settings
from stream.worker.consumer_patch import own_reader
from stream.worker.context import WorkerContext
from stream.worker.failures import until_applied

log = logging.getLogger("segstream")

READ_TIMEOUT_MS = 10_000

Range = tuple[str, int, int, int]  # topic, partition, first offset, last offset


class DeliveryGaps:
    """Where each input partition's next record should start."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}

    def reset(self) -> None:
        """At an assignment: where reading starts is known again only after the seek."""
        self.next.clear()

    def start_at(self, positions: dict[tuple[str, int], int]) -> None:
        """After a seek to the committed offsets (stream/worker/consumer_patch.py): a first
        record further on than where reading starts means records were skipped there too.
        Records can arrive before the seek is reported (fetched while the tables recovered);
        what they wrote may be undone by the recovery, so they are expected again from the
        start, and a record read again that had been applied is recognised as applied."""
        log.info("reading starts at %s", ", ".join(f"{t}[{p}] {o}" for (t, p), o in sorted(positions.items())))
        self.next.update(positions)

    def missing(self, records: Iterable[Any]) -> list[Range]:
        """The offset ranges skipped before or among ``records`` (Kafka records, as they
        arrived): offsets from where each partition should go on to its last record in the
        batch that no record of the batch has, whatever order the batch holds them in (taken
        record by record, a later offset ahead of an earlier one named the earlier missing,
        and it was read again though it was there)."""
        offsets: dict[tuple[str, int], list[int]] = {}
        for record in records:
            offsets.setdefault((record.topic, record.partition), []).append(record.offset)
        ranges = []
        for (topic, partition), seen in offsets.items():
            seen.sort()
            expected = self.next.get((topic, partition), seen[0])
            for offset in seen:
                if offset > expected:
                    ranges.append((topic, partition, expected, offset - 1))
                expected = max(expected, offset + 1)
            self.next[(topic, partition)] = expected
        return ranges


async def read_again(settings: Settings, ranges: list[Range]) -> list[Any]:
    """The records the broker holds in ``ranges`` (aiokafka records), in offset order."""
    reader = own_reader(settings)
    await reader.start()
    try:
        wanted = {TopicPartition(topic, partition): (first, last) for topic, partition, first, last in ranges}
        reader.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            reader.seek(tp, first)
        found: list[Any] = []
        while wanted:
            batches = await reader.getmany(*wanted, timeout_ms=READ_TIMEOUT_MS)
            if not batches:
                log.error("records %s could not be read again within %d ms", sorted(wanted), READ_TIMEOUT_MS)
                raise TimeoutError(f"reading {sorted(wanted)} again")
            for tp, records in batches.items():
                first, last = wanted[tp]
                found += [r for r in records if first <= r.offset <= last]
                if records[-1].offset >= last:
                    del wanted[tp]
        return found
    finally:
        await reader.stop()


async def with_skipped(ctx: WorkerContext, gaps: DeliveryGaps, records: list[Any], where: str) -> list[Any]:
    """``records`` with the records Faust skipped among them read again (retried while the broker
    cannot be read, like any batch: stream/worker/failures.py), each partition's in offset order:
    a user's row takes an event at or below the offset it last applied for a copy."""
    ranges = gaps.missing(records)
    if not ranges:
        return records
    found: list[Any] = []

    async def read() -> None:
        found[:] = await read_again(ctx.settings, ranges)

    await until_applied(ctx.failures, where, read, lambda: ctx.app.should_stop)
    log.warning("%s: offsets %s were skipped by the consumer; read again from the broker: %d records",
                where, ", ".join(f"{t}[{p}] {a}..{b}" for t, p, a, b in ranges), len(found))
    ctx.counters.reread += len(found)
    return in_offset_order(found + records)


def in_offset_order(records: list[Any]) -> list[Any]:
    """``records`` with each partition's in offset order, partitions in the order they first appear."""
    first_seen: dict[tuple[str, int], int] = {}
    for record in records:
        first_seen.setdefault((record.topic, record.partition), len(first_seen))
    return sorted(records, key=lambda r: (first_seen[(r.topic, r.partition)], r.offset))
