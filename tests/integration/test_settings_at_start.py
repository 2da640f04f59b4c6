"""Settings are checked for what they do, at start, with a real broker and worker: a second
worker on a running worker's data dir, a data dir segstream cannot write and values that would
break a worker are each one line and exit code 2, before anything joins the consumer group."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest
from kafka_io import cli, cli_env

from stream.config import Settings
from stream.tools.broker import free_port
from stream.tools.launcher import WorkerProcess


def one_line(run: subprocess.CompletedProcess) -> str:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr, (run.returncode, run.stderr[-2000:])
    return lines[0]


def run_while_watching(
    worker: WorkerProcess, settings: Settings, quiet_s: float
) -> tuple[subprocess.CompletedProcess, float, set]:
    """``segstream worker`` with ``settings`` (as kafka_io.cli runs it), while ``worker``'s /healthz
    is sampled every 0.1 s until ``quiet_s`` after it exited: (the run, seconds it took, every
    (ready, input partitions) seen)."""
    started = time.monotonic()
    second = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker"], env=cli_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen, ended = set(), None
    while ended is None or time.monotonic() < ended + quiet_s:
        health = worker.health()
        seen.add(None if health is None else (health["ready"], tuple(health["input_partitions"])))
        if ended is None and (second.poll() is not None or time.monotonic() > started + 120):
            ended = time.monotonic()
        time.sleep(0.1)
    second.kill()
    out, err = second.communicate()
    return subprocess.CompletedProcess(second.args, second.returncode, out, err), ended - started, seen


def test_a_second_worker_on_a_running_workers_data_dir_stops_at_once_and_the_first_sees_no_rebalance(
    settings_for, start_worker
):
    settings = settings_for(store="rocksdb://")
    first = start_worker(settings)
    before = first.health()
    # Before the lock, the second one retried RocksDB's lock for ~50 s, twice forcing a rebalance on the
    # first (not ready meanwhile, with half its partitions), then crashed. Faust's rebalance count in
    # /metrics stays 0 on Tansu, so the first's /healthz is watched instead, until a member that had
    # joined would have started a rebalance.
    second = dataclasses.replace(settings, web_port=free_port())
    run, took, seen = run_while_watching(first, second, quiet_s=settings.session_timeout_s)
    assert one_line(run) == (
        f"segstream worker: error: SEGSTREAM_DATA_DIR: data dir {settings.data_dir} is in use by another segstream "
        f"worker (pid {first.pid}) of app id {settings.app_id!r}; give each worker its own SEGSTREAM_DATA_DIR "
        "(flag --data-dir)"
    )
    assert took < 20
    assert seen == {(True, tuple(before["input_partitions"]))}


@pytest.mark.parametrize("store", ["rocksdb://", "memory://"])  # Faust and segstream write there with either
def test_a_data_dir_segstream_cannot_write_is_one_line(settings_for, tmp_path, unwritable_folder, store):
    folder, reason = unwritable_folder
    line = one_line(cli(dataclasses.replace(settings_for(), data_dir=str(folder), store=store), "worker"))
    assert line == (
        f"segstream worker: error: SEGSTREAM_DATA_DIR: {folder} is not a folder segstream can write: {reason} "
        "(flag --data-dir)"
    )


@pytest.mark.parametrize(
    ("bad", "names"),
    [
        ({"app_id": "../../x"}, ["SEGSTREAM_APP_ID", "'../../x'", "letters, digits"]),
        ({"store": "foo://"}, ["SEGSTREAM_STORE", "'foo://'", "rocksdb://, memory://"]),
        ({"weight_purchase": 0.0}, ["SEGSTREAM_WEIGHT_PURCHASE", ">= 1e-06 and <= 1,000,000"]),
        ({"session_timeout_s": 1e12}, ["SEGSTREAM_SESSION_TIMEOUT_S", "<= 90"]),
    ],
)
def test_a_value_that_would_break_the_worker_is_one_line_before_it_starts(settings_for, tmp_path, bad, names):
    settings: Settings = dataclasses.replace(settings_for(), **bad)
    line = one_line(cli(settings, "worker"))
    assert line.startswith("segstream worker: error: ") and all(name in line for name in names), line
    assert not (tmp_path.parent / "x").exists()  # the app id's folder, had it gone outside the data dir
