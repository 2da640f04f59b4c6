"""What a restarted worker trusts of its RocksDB tables (stream/core/recovery_plan.py): after a
kill the partitions it was writing may hold rows the changelog never got, and are wiped and
restored from the changelog; after a clean stop its rows are kept and only what follows them is
read. A row planted in the local store after the worker stopped stands for a row written just
before a kill whose changelog record never left."""

from __future__ import annotations

from pathlib import Path

from kafka_io import drain, produce
from rocksdict import Options, Rdict

from stream.core.user_state import UserState
from stream.kafka import user_partition
from stream.tools.launcher import eventually

USERS = [f"u{n}" for n in range(6)]


def plant_row(settings, user_id: str) -> None:
    """Write ``user_id``'s row straight into the worker's RocksDB partition database."""
    partition = user_partition(user_id, settings.partitions)
    (path,) = Path(settings.app_data_dir).glob(f"**/tables/users-{partition}.db")
    state = UserState(user_id)
    state.count_action("view")
    db = Rdict(str(path), options=Options(raw_mode=True))
    db.put(user_id.encode(), state.to_bytes())
    db.close()


def reviews(n: int) -> list[tuple[str, dict]]:
    return [
        (u, {"event_id": f"r{n}-{u}", "user_id": u, "item_id": "i1", "text": f"a fine phone, round {n}",
             "ts": 1_700_000_000_000 + n})
        for u in USERS
    ]


def test_a_killed_workers_rows_come_from_the_changelog_a_stopped_ones_are_kept(settings_for, start_worker):
    settings = settings_for(store="rocksdb://", k=2, seed_users=2)
    worker = start_worker(settings)
    produce(settings, settings.topic_reviews, reviews(1))
    worker.wait_until(lambda h: h["counters"]["applied"] == len(USERS), 120, "the reviews")
    segmented = eventually(lambda: [worker.get(f"/users/{u}")[1]["segment"] for u in USERS], lambda s: None not in s, 60)
    assert None not in segmented

    worker.stop(kill=True)
    plant_row(settings, "ghost")
    worker = start_worker(settings)
    assert worker.get("/users/ghost")[0] == 404  # the partition was wiped and restored
    assert all(worker.get(f"/users/{u}")[1]["reviews"] == 1 for u in USERS)
    # Their last change events are sent again, in case they never left (stream/worker/republish.py).
    worker.wait_until(lambda h: h["counters"]["resent"] == len(USERS), 30, "the last changes sent again")
    assert "wiping the local rows" in worker.log_path.read_text()
    latest = dict(drain(settings, settings.topic_membership))
    assert all(latest[u]["segment"] == worker.get(f"/users/{u}")[1]["segment"] for u in USERS)

    produce(settings, settings.topic_reviews, reviews(2))
    worker.wait_until(lambda h: h["counters"]["applied"] == len(USERS), 120, "the second reviews")
    worker.stop()
    plant_row(settings, "ghost")
    worker = start_worker(settings)
    assert worker.get("/users/ghost")[0] == 200  # trusted: nothing was re-read from the changelog
    assert all(worker.get(f"/users/{u}")[1]["reviews"] == 2 for u in USERS)
    assert "wiping" not in worker.log_path.read_text()
