"""segstream evaluate: metric and recommendation functions, file reading, and real runs."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from stream import evaluate as ev

# --- clustering metrics ----------------------------------------------------------------------


def test_inertia_nearest_labels_and_ratio():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    batch = np.array([[1.0, 0.0], [10.0, 0.0]])
    stream = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert ev.nearest_labels(x, batch).tolist() == [0, 0, 1]
    assert ev.inertia(x, batch) == 2.0
    assert ev.inertia(x, stream) == 4.0
    assert ev.inertia_ratio(x, stream, batch) == 2.0
    assert ev.inertia_ratio(x, batch, batch) == 1.0
    assert ev.inertia_ratio(np.zeros((2, 2)), np.zeros((1, 2)), np.zeros((1, 2))) == 1.0
    assert ev.inertia(np.zeros((0, 2)), batch) == 0.0


def test_silhouette_cosine_by_hand():
    # a, b in segment 0 (cosine distance 1 apart); c alone in segment 1 (distance 2 from a, 1 from b).
    # s(a) = (2 - 1) / 2, s(b) = (1 - 1) / 1, s(c) = 0 (a singleton): mean 1/6.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert ev.silhouette(x, np.array([0, 0, 1])) == pytest.approx(1 / 6)
    separated = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    assert ev.silhouette(separated, np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert ev.silhouette(separated, np.array([0, 0, 0, 0])) is None


def test_sample_indices_are_fixed_and_bounded():
    assert ev.sample_indices(4, 10).tolist() == [0, 1, 2, 3]
    a, b = ev.sample_indices(1000, 50, seed=3), ev.sample_indices(1000, 50, seed=3)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 50 and a.tolist() == sorted(a.tolist())


def test_calinski_harabasz_and_davies_bouldin_by_hand():
    # Centroids 1 and 11, overall mean 6: between = 4 * 25 = 100, within = 4 * 1 = 4.
    # CH = (100 / (2 - 1)) / (4 / (4 - 2)) = 50. DB = (1 + 1) / |11 - 1| = 0.2.
    x = np.array([[0.0], [2.0], [10.0], [12.0]])
    labels = np.array([0, 0, 1, 1])
    assert ev.calinski_harabasz(x, labels) == pytest.approx(50.0)
    assert ev.davies_bouldin(x, labels) == pytest.approx(0.2)
    assert ev.calinski_harabasz(x, np.zeros(4, dtype=int)) is None
    assert ev.davies_bouldin(x, np.zeros(4, dtype=int)) is None


def test_nmi_and_ari_by_hand():
    assert ev.nmi([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    assert ev.ari([0, 0, 1, 1], ["b", "b", "a", "a"]) == pytest.approx(1.0)
    assert ev.nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # All pairs split: index 0, expected (2 * 2) / C(4, 2) = 2/3, max 2: (0 - 2/3) / (2 - 2/3).
    assert ev.ari([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def test_clustering_metrics_uses_only_labelled_users_and_a_given_batch():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    segments = np.array([1, 1, 0, 0])
    batch = (np.array([0, 0, 1, 1]), np.array([[0.95, 0.05], [0.05, 0.95]]))
    out = ev.clustering_metrics(x, segments, batch[1][::-1], 2, truth=["a", "a", None, "b"], batch=batch)
    assert out["users"] == 4 and out["segments_used"] == 2 and out["labelled_users"] == 3
    assert out["inertia_ratio"] == pytest.approx(1.0)
    assert out["nmi_vs_batch"] == pytest.approx(1.0) and out["ari_vs_batch"] == pytest.approx(1.0)
    assert out["nmi_vs_labels"] == pytest.approx(1.0) and out["batch_nmi_vs_labels"] == pytest.approx(1.0)


def test_aggregate_mean_and_spread():
    assert ev.aggregate([0.5, 0.7, None]) == {"mean": pytest.approx(0.6), "spread": pytest.approx(0.2), "values": [0.5, 0.7, None]}
    assert ev.aggregate([None])["mean"] is None


# --- recommendation metrics ------------------------------------------------------------------


def test_time_split_per_user_first_80_percent_ties_by_item_id():
    rows = [
        ("u1", "3", 10), ("u2", "7", 1), ("u1", "10", 5), ("u1", "2", 5),
        ("u2", "8", 2), ("u1", "4", 20), ("u1", "5", 30),
    ]
    train, held = ev.time_split(rows, 0.8)
    # u1 by (ts, numeric id): 2, 10, 3, 4, 5 -> floor(5 * 0.8) = 4 train; u2: floor(1.6) = 1.
    assert train == [0, 1, 2, 3, 5]
    assert held == {"u1": ["5"], "u2": ["8"]}


def test_popularity_rankings_recommend_recall_coverage():
    train = {"a": ["1", "2"], "b": ["2", "3"], "c": ["3"]}
    groups = {"a": 0, "b": 0, "c": 1}
    assert ev.popularity_rankings(train, groups) == {0: ["2", "1", "3"], 1: ["3"]}
    assert ev.popularity_rankings(train) == {None: ["2", "3", "1"]}  # tie 2/3 by id
    assert ev.recommend(["2", "1", "3"], {"2"}, n=2) == ["1", "3"]
    recs, fallback = ev.popularity_recommendations(train, ["a", "c", "d"], groups, n=2)
    assert recs == {"a": ["3"], "c": [], "d": ["2", "3"]} and fallback == 1
    held = {"a": ["3", "9"], "c": ["1"], "d": ["2"]}
    assert ev.recall_at_n(recs, held) == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert ev.coverage_at_n(recs, 10) == pytest.approx(0.2)
    global_recs, none = ev.popularity_recommendations(train, ["a"], n=2)
    assert global_recs == {"a": ["3"]} and none == 0


def test_mean_embeddings_are_plain_means():
    vectors = {"1": np.array([1.0, 0.0]), "2": np.array([0.0, 1.0])}
    users, means = ev.mean_embeddings({"u2": ["1", "2"], "u1": ["1"], "u3": ["9"]}, vectors)
    assert users == ["u1", "u2"]
    assert means.tolist() == [[1.0, 0.0], [0.5, 0.5]]


# --- reading files and the command line -------------------------------------------------------


def test_event_kind():
    assert ev.event_kind({"item_id": "i", "title": "T"}) == "item"
    assert ev.event_kind({"user_id": "u", "item_id": "i", "text": "t"}) == "review"
    assert ev.event_kind({"user_id": "u", "item_id": "i", "action": "view"}) == "behavior"
    assert ev.event_kind({"user_id": "u"}) is None
    assert ev.event_kind([1, 2]) is None


def test_read_events_labels_heldout_and_k_range(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"item_id": "i1", "title": "One"}),
                json.dumps({"event_id": "e1", "user_id": "u1", "item_id": "i1", "action": "view", "ts": 1}),
                "",
                "not json",
                json.dumps({"event_id": "e2", "user_id": "u2", "item_id": "i1", "text": "nice", "ts": 2}),
                json.dumps({"what": 1}),
                json.dumps({"event_id": "e3", "user_id": "u1", "item_id": "i1", "action": "cart", "ts": 3}),
            ]
        )
        + "\n"
    )
    file = ev.read_events(path)
    assert file.counts() == {"items": 1, "reviews": 1, "behaviors": 2, "users": 2, "not_json": 1, "unrecognised": 1}
    assert [(s.line_no, s.kind, s.key) for s in file.stream] == [(2, "behavior", b"u1"), (5, "review", b"u2"), (7, "behavior", b"u1")]
    assert file.users == ["u1", "u2"]
    (tmp_path / "labels.csv").write_text("user_id,label\nu1,x\nu2,y\n")
    assert ev.read_labels(tmp_path / "labels.csv") == {"u1": "x", "u2": "y"}
    (tmp_path / "held.csv").write_text("user_id,item_id\nu1,i2\nu1,i3\n")
    assert ev.read_heldout(tmp_path / "held.csv") == {"u1": ["i2", "i3"]}
    assert ev.parse_k_range("3..5") == [3, 4, 5]
    for bad in ("5..3", "0..2", "3-5"):
        with pytest.raises(ValueError):
            ev.parse_k_range(bad)
    assert ev.seed_users_for(200, 60)[0] == 60 and ev.seed_users_for(200, 500)[0] == 200


def test_cli_parses_evaluate():
    from stream.cli import build_parser, cmd_evaluate

    args = build_parser().parse_args(["evaluate", "x.jsonl", "--k-range", "2..4", "--orders", "3", "--json"])
    assert args.func is cmd_evaluate and args.k_range == "2..4" and args.orders == 3 and args.json
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "x.jsonl", "--k", "3", "--k-range", "2..4"])


# --- runs of the evaluator ------------------------------------------------------------------


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
            lines.append({"event_id": f"e{u}-{n}", "user_id": f"u{u}", "item_id": item, "action": "click", "ts": 1000 * (n + 1)})
        held[f"u{u}"] = [f"{genre}{(u + 5) % 10}"]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in lines))
    report = ev.evaluate(ev.read_events(path), GenreEncoder(), [2], orders=2, labels=labels, heldout=held, overrides={"batch_size": 7})
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
    json.dumps(ev._jsonable(report))
    assert "recall@10 segment popularity" in ev.format_report(report)


def test_real_run_on_bbc_articles(encoder, tmp_path: Path):
    from stream import bbc

    articles = [a for a in bbc.articles(per_label=20) if a.label in ("business", "entertainment", "politics")]
    assert len(articles) == 60
    path = tmp_path / "bbc.jsonl"
    path.write_text("".join(json.dumps(bbc.review_event(a, n)) + "\n" for n, a in enumerate(articles)))
    labels = {f"bbc-{n}": a.label for n, a in enumerate(articles)}
    # Small batches and a seed of 20 users, so 40 users go through the incremental updates.
    report = ev.evaluate(
        ev.read_events(path), encoder, [3], orders=2, labels=labels, overrides={"batch_size": 16, "seed_users": 20}
    )
    metrics = report["results"][0]["metrics"]
    assert report["encoding"]["texts"] == 60  # each text once, although streamed twice
    assert metrics["users"]["mean"] == 60 and metrics["applied"]["mean"] == 60
    assert metrics["nmi_vs_labels"]["mean"] > 0.5
    assert metrics["inertia_ratio"]["mean"] >= 0.99
    assert math.isfinite(metrics["silhouette"]["mean"])
    text = ev.format_report(report)
    assert "NMI segments vs labels" in text and "cores" in text
