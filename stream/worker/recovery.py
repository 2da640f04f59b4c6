"""Table recovery that trusts a partition's local rows only as far as its changelog vouches for
them (stream/core/recovery_plan.py decides), as Kafka Streams does.

At every assignment, before Faust reads where to resume each changelog partition, each partition
kept on disk is checked: one this data dir was writing when its worker last stopped without a
hand-over (stream/worker/unflushed.py), one whose recorded offset is beyond its changelog's end
(the broker lost or recreated the topic: Faust would stop with a ConsistencyError) or before its
start is wiped and restored from the beginning, with one warning naming it and why. Then the
partitions this worker will write are marked, before any row is.

Faust clears its queue of changelog records whenever the flow resumes, to drop records fetched
before a seek. It resumes the flow once more after starting the standby partitions, so records
fetched for them in between would be dropped for good, and a standby that took over would lack
those users' rows (as it did in rolling restarts when Faust dropped such records in its consumer:
stream/worker/consumer_patch.py, adjustment 7). :class:`ResumeSafeQueue` keeps what was fetched
after its partition's last seek.

Before Faust opens anything, :func:`forget_other_cluster` compares the cluster the worker's data
directory was filled from with the one it talks to now, and starts the directory afresh when
they differ (a restarted embedded broker is a new cluster).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from faust.tables import manager as faust_manager
from faust.tables.recovery import Recovery
from mode.utils.queues import ThrowableQueue

from stream.core.recovery_plan import LocalPartition, RecoveryPlan, plan_recovery
from stream.worker.unflushed import UnflushedPartitions

log = logging.getLogger("segstream")

ORIGIN_FILE = "segstream-origin.json"


class CheckedRecovery(Recovery):
    """Faust's recovery with :func:`plan_recovery` applied to every partition kept on disk."""

    unflushed: ClassVar[UnflushedPartitions | None] = None  # set by use_checked_recovery

    async def _build_offsets(self, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        kept = {tp for tp in tps if hasattr(self.tp_to_table[tp].data, "discard_partition")}  # on disk
        if kept and self.unflushed is not None:
            plans = await self._plans(consumer, kept, destination)
            wiped = {tp.partition for tp, plan in plans.items() if plan.wipe}
            self.unflushed.republish |= {tp.partition for tp, plan in plans.items() if plan.republish}
            for tp, plan in sorted(plans.items()):
                if plan.wipe:
                    log.warning("table %s[%d] (%s): %s; wiping the local rows and restoring them from the changelog",
                                tp.topic, tp.partition, title, plan.reason)
                    self.tp_to_table[tp].data.discard_partition(tp.partition)
                if plan.read_after is None:
                    destination[tp] = None
            self.unflushed.wiped(wiped)
            if title == "active":
                self.unflushed.mark({tp.partition for tp in kept})
        await super()._build_offsets(consumer, tps, destination, title)

    async def _seek_offsets(self, consumer: Any, tps: Any, offsets: Any, title: str) -> None:
        self.tables.changelog_queue.seeking(tps)  # a ResumeSafeQueue: see use_checked_recovery
        await super()._seek_offsets(consumer, tps, offsets, title)

    async def _plans(self, consumer: Any, tps: set[Any], destination: Any) -> dict[Any, RecoveryPlan]:
        earliest = await consumer.earliest_offsets(*tps)
        ends = await consumer.highwaters(*tps)
        marked = self.unflushed.marked() if self.unflushed is not None else set()
        return {
            tp: plan_recovery(LocalPartition(
                persisted=destination.get(tp), earliest=earliest.get(tp) or 0, end=ends.get(tp) or 0,
                unflushed=tp.partition in marked,
            ))
            for tp in tps
        }


class ResumeSafeQueue(ThrowableQueue):
    """Faust's changelog queue, whose clearing keeps the records fetched after their partition's
    last seek (counted in the order they were queued)."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)  # type: ignore[misc]
        self._numbers: deque[int] = deque()
        self._queued = 0
        self._seeks: dict[Any, int] = {}

    def _put(self, item: Any) -> None:
        super()._put(item)  # type: ignore[misc]
        self._numbers.append(self._queued)
        self._queued += 1

    def _get(self) -> Any:
        self._numbers.popleft()
        return super()._get()  # type: ignore[misc]

    def seeking(self, tps: Iterable[Any]) -> None:
        """Records of ``tps`` queued until now were fetched before this seek."""
        self._seeks.update({tp: self._queued for tp in tps})

    def clear(self) -> None:
        queue: deque[Any] = self._queue  # type: ignore[attr-defined]
        kept = [(n, e) for n, e in zip(self._numbers, queue) if n >= self._seeks.get(e.message.tp, self._queued)]
        super().clear()
        self._numbers.clear()
        for number, event in kept:
            queue.append(event)
            self._numbers.append(number)


def use_checked_recovery(unflushed: UnflushedPartitions | None) -> None:
    """Make Faust's table manager create :class:`CheckedRecovery`, keeping its marks in ``unflushed``,
    and queue changelog records in a :class:`ResumeSafeQueue`."""
    CheckedRecovery.unflushed = unflushed
    faust_manager.Recovery = CheckedRecovery  # type: ignore[misc]
    faust_manager.TableManager.changelog_queue = property(_resume_safe_queue)  # type: ignore[method-assign,assignment]


def _resume_safe_queue(tables: Any) -> ThrowableQueue:
    if tables._changelog_queue is None:
        app = tables.app
        tables._changelog_queue = ResumeSafeQueue(
            maxsize=app.conf.stream_buffer_maxsize, flow_control=app.flow_control, clear_on_resume=True,
        )
    return tables._changelog_queue


def forget_other_cluster(data_dir: Path, cluster_id: str | None) -> None:
    """Start ``data_dir`` afresh when it was filled from another cluster than ``cluster_id``,
    and record this one."""
    origin = data_dir / ORIGIN_FILE
    recorded = json.loads(origin.read_text()).get("cluster_id") if origin.is_file() else None
    if data_dir.exists() and any(p.name != ORIGIN_FILE for p in data_dir.iterdir()) and recorded != cluster_id:
        log.warning(
            "the tables in %s were filled from Kafka cluster %r, the broker is cluster %r: "
            "discarding them; they are restored from this cluster's changelogs", data_dir, recorded, cluster_id,
        )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    origin.write_text(json.dumps({"cluster_id": cluster_id}))
