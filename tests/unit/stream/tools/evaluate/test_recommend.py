"""Recommendation figures by hand: time split, popularity, recall, coverage."""

from __future__ import annotations

import numpy as np
import pytest

from stream.tools.evaluate import recommend


def test_time_split_per_user_first_80_percent_ties_by_item_id():
    rows = [
        ("u1", "3", 10), ("u2", "7", 1), ("u1", "10", 5), ("u1", "2", 5),
        ("u2", "8", 2), ("u1", "4", 20), ("u1", "5", 30),
    ]
    train, held = recommend.time_split(rows, 0.8)
    # u1 by (ts, numeric id): 2, 10, 3, 4, 5 -> floor(5 * 0.8) = 4 train; u2: floor(1.6) = 1.
    assert train == [0, 1, 2, 3, 5]
    assert held == {"u1": ["5"], "u2": ["8"]}


def test_popularity_rankings_recommend_recall_coverage():
    train = {"a": ["1", "2"], "b": ["2", "3"], "c": ["3"]}
    groups = {"a": 0, "b": 0, "c": 1}
    assert recommend.popularity_rankings(train, groups) == {0: ["2", "1", "3"], 1: ["3"]}
    assert recommend.popularity_rankings(train) == {None: ["2", "3", "1"]}  # tie 2/3 by id
    assert recommend.recommend(["2", "1", "3"], {"2"}, n=2) == ["1", "3"]
    recs, fallback = recommend.popularity_recommendations(train, ["a", "c", "d"], groups, n=2)
    assert recs == {"a": ["3"], "c": [], "d": ["2", "3"]} and fallback == 1
    held = {"a": ["3", "9"], "c": ["1"], "d": ["2"]}
    assert recommend.recall_at_n(recs, held) == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert recommend.coverage_at_n(recs, 10) == pytest.approx(0.2)
    global_recs, none = recommend.popularity_recommendations(train, ["a"], n=2)
    assert global_recs == {"a": ["3"]} and none == 0


def test_mean_embeddings_are_plain_means():
    vectors = {"1": np.array([1.0, 0.0]), "2": np.array([0.0, 1.0])}
    users, means = recommend.mean_embeddings({"u2": ["1", "2"], "u1": ["1"], "u3": ["9"]}, vectors)
    assert users == ["u1", "u2"]
    assert means.tolist() == [[1.0, 0.0], [0.5, 0.5]]
