"""The second day: the embedded broker starts empty again while the worker's RocksDB tables
remember the first day; and app ids sharing a data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_io import produce

from stream.config import Settings, load_settings
from stream.datasets import movielens
from stream.kafka import ensure_topics
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess

MOVIES = movielens.movies()[:10]


def day(settings: Settings, tmp_path: Path, n: int, users: int = 4) -> WorkerProcess:
    """A worker on ``settings`` that applies ``users`` users' five behaviours each (and is left running)."""
    ensure_topics(settings)
    worker = WorkerProcess(settings, tmp_path / f"worker-{n}.log").start()
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in MOVIES])
    events = [
        (f"u{u}", {"event_id": f"day{n}-u{u}-{e}", "user_id": f"u{u}", "item_id": MOVIES[(u + e) % 10].item_id,
                   "action": "view", "ts": 1_700_000_000_000 + n * 86_400_000 + e})
        for u in range(users) for e in range(5)
    ]
    produce(settings, settings.topic_behaviors, events)
    worker.wait_until(lambda h: h["counters"]["applied"] == len(events), 120, f"day {n}'s events")
    return worker


@pytest.mark.parametrize("cluster_id", [None, "tansu_cluster"], ids=["new-cluster-id", "same-cluster-id"])
def test_a_store_ahead_of_its_changelog_is_discarded_and_restored(tmp_path, onnx_dir, cluster_id):
    port = free_port()
    settings = load_settings(
        env={}, bootstrap=f"127.0.0.1:{port}", app_id="second-day", store="rocksdb://", data_dir=str(tmp_path / "data"),
        model_cache=str(onnx_dir.parent), prefer_gpu=False, web_port=free_port(), session_timeout_s=4.0,
        batch_wait_s=0.1, k=2, seed_users=4,
    )
    for n in (1, 2):
        with EmbeddedBroker(port=port, log_path=tmp_path / f"broker-{n}.log", cluster_id=cluster_id).running():
            worker = day(settings, tmp_path, n)
            try:
                # The first day's rows went with the broker that held their changelog.
                assert worker.get("/users/u0")[1]["events"] == 5
            finally:
                worker.stop()
    second = (tmp_path / "worker-2.log").read_text()
    assert "ConsistencyError" not in second and "Traceback" not in second
    if cluster_id is None:
        assert "were filled from Kafka cluster" in second  # noticed before Faust opened the tables
    else:
        assert "ahead of its changelog" in second and "second-day-users-changelog" in second


def test_app_ids_sharing_a_data_dir_keep_their_own_tables(settings_for, tmp_path):
    first, second = (settings_for(store="rocksdb://", k=2, seed_users=2) for _ in range(2))
    assert first.data_dir == second.data_dir and first.app_id != second.app_id
    for n, settings in enumerate((first, second)):
        worker = day(settings, tmp_path, n, users=2)
        worker.stop()
    assert sorted(p.name for p in Path(first.data_dir).iterdir()) == sorted([first.app_id, second.app_id])
