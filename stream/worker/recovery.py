"""Table recovery that survives a broker which lost its data, as Kafka Streams does.

Faust keeps, in each RocksDB partition of a table, the last changelog offset it wrote. When the
changelog is behind that offset (the broker was restarted with memory storage, or its topics
were recreated), Faust stops with a ConsistencyError. Kafka Streams treats this as a corrupted
task: it wipes the local store of those partitions and restores them from the changelog.
:class:`SelfHealingRecovery` does the same, per partition, with one warning naming them.

Before Faust opens anything, :func:`forget_other_cluster` compares the cluster the worker's data
directory was filled from with the one it talks to now, and starts the directory afresh when
they differ (a restarted embedded broker is a new cluster).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from faust.tables import manager as faust_manager
from faust.tables.recovery import Recovery

log = logging.getLogger("segstream")

ORIGIN_FILE = "segstream-origin.json"


class SelfHealingRecovery(Recovery):
    async def _build_offsets(self, consumer: Any, tps: Any, destination: Any, title: str) -> None:
        """Before Faust reads where to resume, discard the partitions whose persisted offset
        is beyond their changelog's end (they restore from its beginning instead)."""
        persisted = {tp: destination[tp] for tp in tps if destination.get(tp) is not None}
        if persisted:
            ends = await consumer.highwaters(*persisted)
            ahead = {tp: (offset, ends[tp]) for tp, offset in persisted.items() if offset >= (ends.get(tp) or 0)}
            if ahead:
                log.warning(
                    "local %s table data is ahead of its changelog (the broker lost or recreated the topic), "
                    "discarding it and restoring from the changelog: %s", title,
                    ", ".join(f"{tp.topic}[{tp.partition}] stored offset {o}, changelog end {e}" for tp, (o, e) in sorted(ahead.items())),
                )
                for tp in ahead:
                    self.tp_to_table[tp].data.discard_partition(tp.partition)
                    for offsets in (self.active_offsets, self.standby_offsets):
                        if tp in offsets:
                            offsets[tp] = None
        await super()._build_offsets(consumer, tps, destination, title)


def use_self_healing_recovery() -> None:
    """Make Faust's table manager create :class:`SelfHealingRecovery`."""
    faust_manager.Recovery = SelfHealingRecovery  # type: ignore[misc]


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
