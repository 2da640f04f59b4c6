"""What a worker may trust of a table partition it keeps on disk, and where its changelog reading
starts: one decision for an active partition and a standby alike, at every assignment.

The local store (RocksDB) of a partition holds rows applied from the changelog up to a recorded
offset, and, while this worker writes the partition, rows it wrote itself. Those reach the
changelog a moment later, and the input offsets of their events are committed only after that.
A worker that stops without handing the partition over (kill -9, a crash, a lost session) can
leave rows the changelog never got: trusted, they would make redelivered events look applied,
and the next holder, restoring from the changelog, would lack them for good. As Kafka Streams
does with a task it cannot vouch for (``TaskCorruptedException``), such a partition is wiped and
restored from the beginning of its changelog; and since the change events of its last rows may
not have left either, each user's last change is sent again once it is restored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LocalPartition:
    """What is known of one table partition before reading its changelog."""

    persisted: int | None  # the last changelog offset the local store applied; None: none recorded
    earliest: int  # the first offset the changelog still holds
    end: int  # the changelog's end offset (its last offset + 1)
    unflushed: bool  # this data dir was writing it when its worker last stopped without a hand-over


@dataclass(frozen=True)
class RecoveryPlan:
    wipe: bool  # delete the local rows (and their offset) before reading
    read_after: int | None  # read the changelog after this offset; None: from its beginning
    reason: str  # why, for the log
    republish: bool = False  # the last change of every user may not have been delivered: send them again


def plan_recovery(local: LocalPartition) -> RecoveryPlan:
    """Trust the local rows and read only what follows them, or wipe them and read everything."""
    if local.unflushed:
        return RecoveryPlan(True, None, "its worker stopped while writing it, without handing it over: "
                            "local rows may hold events the changelog never got", republish=True)
    if local.persisted is None:
        return RecoveryPlan(False, None, "no changelog offset recorded locally")
    if local.persisted >= local.end:
        return RecoveryPlan(True, None, f"local offset {local.persisted} is ahead of its changelog, which ends at "
                            f"{local.end} (the broker lost or recreated the topic)")
    if local.persisted + 1 < local.earliest:
        return RecoveryPlan(True, None, f"the changelog starts at {local.earliest}, after local offset "
                            f"{local.persisted}: the records in between are gone")
    return RecoveryPlan(False, local.persisted, f"local rows up to offset {local.persisted} agree with the changelog")
