"""Runs of the evaluator: a behaviour file with a stand-in encoder, and BBC articles with the real one."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from stream.datasets import bbc
from stream.tools.evaluate import command, events_file, table
from stream.tools.evaluate.report import evaluate


class GenreEncoder:
    """A stand-in encoder: "Action" texts near e0, "Romance" texts near e1, a little noise."""

    dim = 8
    providers = ["fake"]
    batch_size = 32

    def encode(self, texts, batch_size=32):
        rows = []
        for text in texts:
            rng = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
            v = 0.2 * rng.standard_normal(self.dim)
            v[0 if "Action" in text else 1] += 1.0
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)


def test_behaviour_file_through_the_pipeline_with_recommendations(tmp_path: Path):
    lines, labels, held = [], {}, {}
    for n in range(10):
        lines.append({"item_id": f"a{n}", "title": f"Action film {n}", "categories": ["Action"]})
        lines.append({"item_id": f"r{n}", "title": f"Romance film {n}", "categories": ["Romance"]})
    for u in range(20):
        genre = "a" if u % 2 == 0 else "r"
        labels[f"u{u}"] = genre
        for n in range(5):
            item = f"{genre}{(u + n) % 10}"
            lines.append({"event_id": f"e{u}-{n}", "user_id": f"u{u}", "item_id": item, "action": "click", "ts": 1_600_000_000_000 + 1000 * (n + 1)})
        held[f"u{u}"] = [f"{genre}{(u + 5) % 10}"]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    report = evaluate(events_file.read_events(path), GenreEncoder(), [2], orders=2, labels=labels, heldout=held, overrides={"batch_size": 7})
    metrics = report["results"][0]["metrics"]
    assert report["settings"]["seed_users"] == 20 and "lowered" in report["settings"]["seed_users_note"]
    assert metrics["applied"]["mean"] == 100 and metrics["dead_letters"]["mean"] == 0
    assert metrics["nmi_vs_labels"]["mean"] == pytest.approx(1.0)
    assert metrics["batch_nmi_vs_labels"]["mean"] == pytest.approx(1.0)
    # A user's held-out item is popular in their genre: the genre segments recommend it.
    assert metrics["recall@10_segments"]["mean"] == pytest.approx(1.0)
    assert metrics["recall@10_batch_mean"]["mean"] == pytest.approx(1.0)
    assert metrics["coverage@10_segments"]["mean"] == pytest.approx(1.0)
    assert 0.0 <= metrics["recall@10_global"]["mean"] < 1.0
    json.dumps(command._jsonable(report))
    assert "recall@10 segment popularity" in table.format_report(report)


def test_real_run_on_bbc_articles(encoder, tmp_path: Path):
    articles = [a for a in bbc.articles(per_label=20) if a.label in ("business", "entertainment", "politics")]
    assert len(articles) == 60
    path = tmp_path / "bbc.jsonl"
    path.write_text("".join(json.dumps(bbc.review_event(a, n)) + "\n" for n, a in enumerate(articles)))
    labels = {f"bbc-{n}": a.label for n, a in enumerate(articles)}
    # Small batches and a seed of 20 users, so 40 users go through the incremental updates.
    report = evaluate(
        events_file.read_events(path), encoder, [3], orders=2, labels=labels, overrides={"batch_size": 16, "seed_users": 20}
    )
    metrics = report["results"][0]["metrics"]
    assert report["encoding"]["texts"] == 60  # each text once, although streamed twice
    assert metrics["users"]["mean"] == 60 and metrics["applied"]["mean"] == 60
    assert metrics["nmi_vs_labels"]["mean"] > 0.5
    assert metrics["inertia_ratio"]["mean"] >= 0.99
    assert math.isfinite(metrics["silhouette"]["mean"])
    text = table.format_report(report)
    assert "NMI segments vs labels" in text and "cores" in text
