"""What an operator watches: /metrics (Faust's sensors and segstream's, parsed by
prometheus_client's parser), the probes, and one JSON object a log line with the model's events."""

from __future__ import annotations

import json
import urllib.request

from kafka_io import produce
from prometheus_client.parser import text_string_to_metric_families

from stream.datasets import movielens
from stream.tools.launcher import eventually

MOVIES = movielens.movies()[:40]
NOW_MS = 1_700_000_000_000


def behaviour(n: int) -> tuple[str, dict]:
    user = f"op{n % 12}"
    movie = MOVIES[(n % 12) * 3 % len(MOVIES) + n % 2]
    return user, {"event_id": f"op-{n}", "user_id": user, "item_id": movie.item_id, "action": "view", "ts": NOW_MS + n}


def scrape(url: str) -> dict[str, list]:
    """Samples by metric family; the raw segstream lines under "text"."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)} | {
        "text": [line for line in text.splitlines() if line.startswith("segstream_")]
    }


def value(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in samples[name] if s.name == name + "_total" or s.name == name if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_probes_and_json_logs_after_events_flowed(settings_for, start_worker):
    settings = settings_for(k=2, seed_users=6, seed_idle_s=2.0, log_format="json")
    worker = start_worker(settings)
    assert worker.get("/livez") == (200, {"status": "alive"})
    assert worker.get("/readyz") == (200, {"ready": True, "reason": "ready"})
    produce(settings, settings.topic_items, [(m.item_id, movielens.item_event(m)) for m in MOVIES])
    worker.wait_until(lambda h: h["catalogue_items"] == len(MOVIES), 120, "the catalogue")
    produce(settings, settings.topic_behaviors, [behaviour(n) for n in range(120)] + [("op0", b"not json")])
    worker.wait_until(lambda h: h["counters"]["applied"] == 120 and h["model"]["seeded"], 120, "the events and a seed")

    samples = eventually(lambda: scrape(worker.url), lambda s: value(s, "segstream_consumer_lag") == 0 and "segstream_consumer_lag" in s and s["segstream_consumer_lag"], 60)
    print("\n".join(samples["text"]))
    assert value(samples, "segstream_events_applied") == 120
    assert value(samples, "segstream_dead_letters", reason="not_json", topic=settings.topic_behaviors) == 1
    assert value(samples, "segstream_model_seeded") == 1 and value(samples, "segstream_model_version") >= 1
    assert value(samples, "segstream_model_events", event="seed") == 1 and value(samples, "segstream_model_owner") == 1
    assert value(samples, "segstream_segment_size") == 12  # every user, in the census
    assert value(samples, "segstream_changes", reason="event", mode="live") + value(samples, "segstream_changes", reason="model_update", mode="live") >= 12
    partitions = {(s.labels["topic"], s.labels["partition"]) for s in samples["segstream_consumer_lag"]}
    assert len(partitions) == 2 * settings.partitions and all(s.value >= 0 for s in samples["segstream_consumer_lag"])
    assert value(samples, "segstream_catalogue_items") == len(MOVIES)
    # Faust's own sensors, kept by the lean monitor (stream/worker/faust_sensors.py)
    assert value(samples, "faust_messages_received_per_topic", topic=settings.topic_behaviors) == 121
    assert value(samples, "faust_messages_received") >= 121 + len(MOVIES)
    assert value(samples, "faust_total_events_per_stream") >= 121 + len(MOVIES)

    lines = [line for line in worker.log_path.read_text().splitlines() if line.startswith("{")]
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("model seed: version") for m in messages), messages[-20:]
    assert any(m.startswith("model published: version") for m in messages)
    assert any(m.startswith("model ownership: this worker now owns the model") for m in messages)
    assert not any(line.startswith("%") for line in worker.log_path.read_text().splitlines())  # no raw librdkafka lines
