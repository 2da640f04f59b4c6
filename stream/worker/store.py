"""The worker's table of users, partitioned like the inputs (the catalogue: stream/worker/catalogue.py).

Faust's RocksDB store puts a row in the database of the partition of the event being processed.
Our tables are written after a micro-batch, outside any single event, and use
``use_partitioner=True`` so a row's changelog partition comes from its key (murmur2, as every
Kafka producer computes it). :class:`KeyPartitionedRocksDB` files the row under that same
partition, so the local database, the changelog and changelog recovery all agree.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import faust
from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore

from stream.config import Settings
from stream.core.user_state import UserState
from stream.core.user_store import UserStore
from stream.kafka import USERS_TABLE, key_partition, user_partition


# RocksDB memory of each partition's database (Faust opens one per table partition; the memory
# store has none). Faust's defaults, 64 MB memtables, up to 3 of them, and a 2 GB block cache,
# let a worker's RSS grow for tens of minutes (at 1,000 behaviours/s the memtables alone grew
# ~30 MB/min). Every event rewrites its user's row (~0.5-2 KB), so small memtables just flush
# sooner; a row read that misses them and the block cache comes from the OS page cache, which is
# not the worker's RSS.
ROCKSDB_MEMORY = {"write_buffer_size": 8 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20}


class KeyPartitionedRocksDB(RocksDBStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, value in ROCKSDB_MEMORY.items():  # read when each partition's database opens
            setattr(self.rocksdb_options, name, value)

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = key_partition(key, self.table.partitions)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def discard_partition(self, partition: int) -> None:
        """Delete every row of one partition, its persisted changelog offset included (the
        database stays open: Faust never closes one while it runs)."""
        db = self._db_for_partition(partition)
        last = db.iter()
        last.seek_to_last()
        if last.valid():
            key = last.key()
            db.delete_range(b"", key)
            db.delete(key)
        self._key_index.clear()


def use_key_partitioned_rocksdb() -> None:
    """Make ``rocksdb://`` store URLs open :class:`KeyPartitionedRocksDB`."""
    STORES.aliases["rocksdb"] = f"{__name__}:{KeyPartitionedRocksDB.__name__}"


@dataclass
class Tables:
    users: Any  # faust Table: user id -> UserState row

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Tables:
        # key_type/value_type bytes make Faust pick the raw codec for the changelogs;
        # use_partitioner: see the module docstring (it also lets sweeps write rows outside events).
        binary = {"key_type": bytes, "value_type": bytes, "partitions": settings.partitions, "use_partitioner": True}
        return cls(app.Table(USERS_TABLE, **binary))


class FaustUserStore(UserStore):
    """The ``users`` table; ``active_partitions`` says which input partitions this worker holds
    (its table also has standby rows of others, which it must not sweep)."""

    def __init__(self, table: Any, partitions: int, active_partitions: Callable[[], set[int]]) -> None:
        self.table = table
        self.partitions = partitions
        self.active_partitions = active_partitions

    def get(self, user_id: str) -> UserState | None:
        raw = self.table.get(user_id.encode())
        return None if raw is None else UserState.from_bytes(raw)

    def put_many(self, states: Iterable[UserState]) -> None:
        for state in states:
            self.table[state.user_id.encode()] = state.to_bytes()

    def delete_many(self, user_ids: Iterable[str]) -> None:
        """``del`` writes a tombstone to the table's changelog: the row is gone there too."""
        for user_id in user_ids:
            if user_id.encode() in self.table:
                del self.table[user_id.encode()]

    def held(self, user_ids: Iterable[str]) -> list[str]:
        active = self.active_partitions()  # once: it reads the consumer's assignment
        return [u for u in user_ids if user_partition(u, self.partitions) in active]

    def user_ids(self) -> list[str]:
        active = self.active_partitions()
        return [k.decode() for k in self.table.keys() if key_partition(k, self.partitions) in active]

    def segments_by_partition(self, partitions: set[int]) -> dict[int, list[int | None]]:
        """Each user's segment, for the users of ``partitions``."""
        found: dict[int, list[int | None]] = {p: [] for p in partitions}
        for key, raw in self.table.items():
            partition = key_partition(key, self.partitions)
            if partition in found:
                found[partition].append(UserState.segment_in(raw))
        return found

    def sample(self, n: int, scan: int, seed: int = 0) -> list[UserState]:
        """Up to ``n`` of this worker's users with a vector, drawn evenly from the first ``scan``
        rows (a reservoir with a fixed seed: the same rows give the same users every time)."""
        rng = random.Random(seed)
        active = self.active_partitions()
        chosen: list[bytes] = []
        eligible = 0
        for seen, (key, raw) in enumerate(self.table.items()):
            if seen >= scan:
                break
            if key_partition(key, self.partitions) not in active:
                continue
            if len(chosen) < n:
                chosen.append(raw)
            elif (slot := rng.randrange(eligible + 1)) < n:
                chosen[slot] = raw
            eligible += 1
        states = [UserState.from_bytes(raw) for raw in chosen]
        return [s for s in states if s.vector is not None]

    def user_ids_holding(self) -> list[str]:
        """This worker's users whose rows hold behaviours for unknown items."""
        active = self.active_partitions()
        return [
            k.decode() for k, raw in self.table.items()
            if key_partition(k, self.partitions) in active and UserState.held_in(raw)
        ]
