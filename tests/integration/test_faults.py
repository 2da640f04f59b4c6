"""Faults around one worker: no broker at start, a broker that stops answering and comes back,
and a broker restarted empty under a running worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from kafka_io import produce

from stream.config import export_to_env, load_settings
from stream.kafka import ensure_topics
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess, eventually


def own_broker_settings(tmp_path, onnx_dir, port: int):
    return load_settings(
        env={}, bootstrap=f"127.0.0.1:{port}", app_id="faults", store="memory://", data_dir=str(tmp_path / "data"),
        model_cache=str(onnx_dir.parent), prefer_gpu=False, web_port=free_port(), session_timeout_s=4.0,
        batch_wait_s=0.1, k=2, seed_users=2,
    )


def behaviour(n: int) -> tuple[str, dict]:
    return f"u{n % 3}", {"event_id": f"f{n}", "user_id": f"u{n % 3}", "item_id": "i", "action": "view", "ts": 1_700_000_000_000 + n}


def test_no_broker_at_start_is_one_clear_line_and_a_non_zero_exit(tmp_path, onnx_dir):
    settings = own_broker_settings(tmp_path, onnx_dir, free_port())  # nothing listens there
    env = {**os.environ, **export_to_env(settings), "SEGSTREAM_BROKER_WAIT_S": "5"}
    started = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "stream.cli", "worker"], env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert run.returncode != 0 and elapsed < 15, (run.returncode, elapsed)
    assert len(lines) == 1 and "no Kafka broker answered at" in lines[0] and "Connection refused" in lines[0], lines


def test_a_broker_that_stops_answering_makes_the_worker_not_ready_until_it_is_back(tmp_path, onnx_dir):
    port = free_port()
    settings = own_broker_settings(tmp_path, onnx_dir, port)
    with EmbeddedBroker(port=port, log_path=tmp_path / "broker.log").running() as broker:
        ensure_topics(settings)
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
        try:
            produce(settings, settings.topic_behaviors, [behaviour(n) for n in range(10)])
            worker.wait_until(lambda h: h["counters"]["applied"] == 10, 60, "the first events")
            lines_before = len(worker.log_path.read_text().splitlines())
            broker.process.send_signal(signal.SIGSTOP)
            try:
                down = eventually(worker.health, lambda h: not h["ready"], 20)
                assert not down["ready"] and not down["broker"]["answers"]
                time.sleep(12)
            finally:
                broker.process.send_signal(signal.SIGCONT)
            logged = len(worker.log_path.read_text().splitlines()) - lines_before
            assert logged < 100, f"{logged} log lines while the broker was away"
            worker.wait_until(lambda h: h["ready"], 90, "the worker to be ready again")
            produce(settings, settings.topic_behaviors, [behaviour(n) for n in range(10, 20)])
            worker.wait_until(lambda h: h["counters"]["applied"] == 20, 90, "events after the outage")
        finally:
            worker.stop()


def test_a_broker_restarted_empty_under_a_running_worker_makes_it_exit_with_the_reason(tmp_path, onnx_dir):
    port = free_port()
    settings = own_broker_settings(tmp_path, onnx_dir, port)
    broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker.log")
    with broker.running():
        ensure_topics(settings)
        worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        with broker.running():  # the same port, a new cluster with nothing in it
            assert worker.process.wait(60) != 0
        log = worker.log_path.read_text()
        assert "is another Kafka cluster now" in log.splitlines()[-1], log.splitlines()[-3:]
    finally:
        worker.stop(kill=True)
