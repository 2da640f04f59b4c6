"""The users table's RocksDB databases are opened with bounded memtables and block cache."""

from __future__ import annotations

import faust
from faust.stores.rocksdb import DEFAULT_BLOCK_CACHE_SIZE, DEFAULT_WRITE_BUFFER_SIZE

from stream.config import load_settings
from stream.worker.store import ROCKSDB_MEMORY, KeyPartitionedRocksDB, Tables, use_key_partitioned_rocksdb


def test_the_users_table_opens_rocksdb_with_bounded_memory(tmp_path):
    use_key_partitioned_rocksdb()
    app = faust.App("store-memory-test", broker="kafka://localhost:1", store="rocksdb://", datadir=str(tmp_path))
    tables = Tables.declare(app, load_settings(env={}, partitions=2))
    store = tables.users.data
    assert isinstance(store, KeyPartitionedRocksDB)
    options = store.rocksdb_options
    assert {name: getattr(options, name) for name in ROCKSDB_MEMORY} == ROCKSDB_MEMORY
    assert options.block_cache_size < DEFAULT_BLOCK_CACHE_SIZE and options.write_buffer_size < DEFAULT_WRITE_BUFFER_SIZE
    db = store._db_for_partition(0)  # opening a database takes the options
    db.put(b"k", b"v")
    assert db.get(b"k") == b"v"
