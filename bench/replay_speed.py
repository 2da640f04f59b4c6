"""Replay speed of the full MovieLens history (not a test): embedded broker, load the 1,682 items
and 100,000 ratings, then ``segstream replay --from-beginning --fresh --final-membership-only``
as a process; prints the replay's progress report (catch-up time, events/s) and the time from
process start to every user's final segment.

    .venv/bin/python bench/replay_speed.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from stream.config import load_settings
from stream.datasets import movielens
from stream.kafka import ensure_topics, publish
from stream.tools.broker import EmbeddedBroker, free_port
from stream.tools.launcher import WorkerProcess


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="segstream-replay-"))
    with EmbeddedBroker(log_path=tmp / "broker.log").running() as broker:
        settings = load_settings(
            bootstrap=broker.bootstrap, app_id="replay-speed", store="memory://", data_dir=str(tmp / "data"),
            web_port=free_port(), session_timeout_s=4.0,
        )
        ensure_topics(settings)
        publish(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in movielens.movies()], "items")
        ratings = [(r.user_id, movielens.behavior_event(r)) for r in movielens.ratings()]
        publish(settings, settings.topic_behaviors, ratings, "behaviors")
        started = time.monotonic()
        command = ["replay", "--from-beginning", "--fresh", "--final-membership-only"]
        worker = WorkerProcess(settings, tmp / "replay.log", command).start()
        try:
            health = worker.wait_until(lambda h: bool(h) and h["replay"]["finished"], 900, "the final membership")
        finally:
            worker.stop()
    assert health is not None
    print("replay:", health["replay"])
    print("counters:", health["counters"])
    print(f"process start to the final membership of every user: {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
