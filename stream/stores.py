"""Table storage: Faust's RocksDB store, filing each row under its key's partition.

Faust's RocksDB store puts a row in the database of the partition of the event being processed.
Our tables are written after a micro-batch, outside any single event, and use
``use_partitioner=True`` so a row's changelog partition comes from its key (murmur2, as every
Kafka producer computes it). This store files the row under that same partition, so the local
database, the changelog and changelog recovery all agree.
"""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from faust.stores import STORES
from faust.stores.rocksdb import Store as RocksDBStore

_PARTITIONER = DefaultPartitioner()


def key_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client, aiokafka and our producers pick for ``key``."""
    return _PARTITIONER(key, range(partitions), None)


class KeyPartitionedRocksDB(RocksDBStore):
    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = key_partition(key, self.table.partitions)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)


def use_key_partitioned_rocksdb() -> None:
    """Make ``rocksdb://`` store URLs open :class:`KeyPartitionedRocksDB`."""
    STORES.aliases["rocksdb"] = f"{__name__}:{KeyPartitionedRocksDB.__name__}"
