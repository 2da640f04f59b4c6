"""A full disk is the environment's failure, not the records': the worker stops applying, says
why at /readyz, dead-letters nothing and leaves its input uncommitted; when it lasts it exits
non-zero, and once the disk has room again a restart applies every event exactly once. The
data dir is a small tmpfs (mounting one needs root, as CI has)."""

from __future__ import annotations

import subprocess
from collections import Counter

import pytest
from kafka_io import drain, produce

from stream.datasets import movielens
from stream.tools import loss_report
from stream.tools.launcher import eventually

MOVIES = movielens.movies()[:50]


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB tmpfs, grown with ``grow()``; unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")

    def grow() -> None:
        subprocess.run(["mount", "-o", "remount,size=256m", str(mount_point)], check=True)

    yield mount_point, grow
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_stalls_the_worker_and_loses_nothing(settings_for, start_worker, small_disk):
    disk, grow = small_disk
    settings = settings_for(store="rocksdb://", data_dir=str(disk), failure_exit_s=5.0, k=4, seed_users=20)
    worker = start_worker(settings)
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in MOVIES])
    worker.wait_until(lambda h: h["catalogue_items"] == len(MOVIES), 120, "the catalogue")
    ratings = [r for r in movielens.ratings() if int(r.item_id) <= len(MOVIES)][:4000]
    produce(settings, settings.topic_behaviors, [(r.user_id, movielens.behavior_event(r)) for r in ratings])

    status, why = eventually(lambda: worker.get("/readyz"), lambda answer: answer[0] == 503, 120)
    assert status == 503 and "No space left on device" in why["reason"], why
    worker.process.wait(60)  # it retries for failure_exit_s, then exits without committing
    assert worker.process.returncode == 75
    assert "exiting without committing" in worker.log_path.read_text().splitlines()[-1]
    assert drain(settings, settings.topic_dead_letters, quiet_s=1.0) == []

    grow()
    worker = start_worker(settings)
    sent = Counter(r.user_id for r in ratings)

    def applied() -> dict[str, int]:
        return {u: sum(worker.get(f"/users/{u}")[1].get("actions", {}).values()) for u in sent}

    counted = eventually(applied, lambda c: c == dict(sent), 180, every_s=2.0)
    wrong = [u for u, n in sent.items() if counted[u] != n]
    assert not wrong, loss_report.user_rows(settings, wrong[:5])
    assert drain(settings, settings.topic_dead_letters, quiet_s=1.0) == []
    worker.stop()
