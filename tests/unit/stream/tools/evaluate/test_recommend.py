"""Recommendation figures by hand: time split, popularity, item-kNN, recall, precision, NDCG, coverage."""

from __future__ import annotations

import math

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


# Item user sets: 1 {u1, u2}, 2 {u1, u2, u3}, 3 {u2, u3}, 4 {u3, u4}, 5 {u4}. Cosines:
# s(1,2) = s(2,3) = 2/sqrt(6) = .8165, s(1,3) = s(3,4) = 1/2, s(2,4) = 1/sqrt(6) = .4082,
# s(4,5) = 1/sqrt(2) = .7071, every other pair 0.
TOY = {"u1": ["1", "2"], "u2": ["1", "2", "3"], "u3": ["2", "3", "4"], "u4": ["4", "5"]}


def test_item_knn_sums_cosines_to_the_training_items_and_skips_them():
    recs = recommend.item_knn_recommendations(TOY, ["u1", "u2", "u3", "u4", "new"])
    # u1: 3 = s(1,3) + s(2,3) = 1.3165, 4 = s(2,4) = .4082, 5 scores 0 so is left out.
    # u2: 4 = s(2,4) + s(3,4) = .9082. u3: 1 = s(1,2) + s(1,3) = 1.3165, 5 = s(4,5) = .7071.
    # u4: 3 = s(3,4) = .5, 2 = s(2,4) = .4082. "new" has no training items.
    assert recs == {"u1": ["3", "4"], "u2": ["4"], "u3": ["1", "5"], "u4": ["3", "2"], "new": []}
    assert all(not set(recs[user]) & set(TOY[user]) for user in TOY)
    assert recommend.item_knn_recommendations(TOY, ["u4"], n=1) == {"u4": ["3"]}


def test_item_knn_keeps_each_items_top_k_neighbours_ties_by_item_id(monkeypatch):
    monkeypatch.setattr(recommend, "ITEM_KNN_NEIGHBOURS", 2)
    # Kept: 1 -> 2, 3; 2 -> 1, 3 (4 dropped); 3 -> 2, then 1 over 4 (tied at 1/2, by id);
    # 4 -> 5, 3 (2 dropped); 5 -> 4. So u1 loses 4 (only 2 -> 4 gave it), u2 loses 4 (2 -> 4 and
    # 3 -> 4 both gone), u4 loses 2.
    recs = recommend.item_knn_recommendations(TOY, list(TOY))
    assert recs == {"u1": ["3"], "u2": [], "u3": ["1", "5"], "u4": ["3"]}


def test_item_knn_equal_scores_go_by_numeric_item_id_and_a_repeat_counts_once():
    # s(1,9) = s(1,10) = 1/sqrt(3 * 1): "9" before "10" (by number, not text).
    train = {"a": ["1"], "b": ["1", "10"], "c": ["1", "9"]}
    assert recommend.item_knn_recommendations(train, ["a"]) == {"a": ["9", "10"]}
    # Counted twice, b's "10" would score 2/sqrt(3 * 2) and come first.
    train["b"] = ["1", "10", "10"]
    assert recommend.item_knn_recommendations(train, ["a"]) == {"a": ["9", "10"]}


RECS = {"a": ["1", "2", "3"], "b": ["4"], "c": ["5", "6"], "e": ["1", "2", "3"]}
HELD = {"a": ["2", "9"], "b": ["4"], "c": ["7"], "d": [], "e": ["1", "2", "3", "4", "5"]}


def test_precision_charges_the_empty_places_of_a_short_list():
    # n = 3: a 1/3, b 1/3 (one item listed), c 0, e 3/3; d has nothing held out, so no say.
    assert recommend.precision_at_n(RECS, HELD, n=3) == pytest.approx((1 / 3 + 1 / 3 + 0 + 1) / 4)
    # n = 2 reads only the first two: a 1/2, b 1/2, c 0, e 2/2.
    assert recommend.precision_at_n(RECS, HELD, n=2) == pytest.approx((1 / 2 + 1 / 2 + 0 + 1) / 4)
    assert recommend.precision_at_n({}, {"a": []}) == 0.0


def test_ndcg_ideal_over_min_of_n_and_held_out():
    # a: hit at position 1 of 2 held -> (1/log2 3) / (1 + 1/log2 3) = 1/log2 6; b: one held, hit
    # first -> 1 (ideal over 1 place, not 3); c: 0; e: 5 held, the 3 places all hits -> 1.
    assert recommend.ndcg_at_n(RECS, HELD, n=3) == pytest.approx((1 / math.log2(6) + 1 + 0 + 1) / 4)
    # n = 1: only a's first item counts and it misses.
    assert recommend.ndcg_at_n(RECS, HELD, n=1) == pytest.approx((0 + 1 + 0 + 1) / 4)


def test_consumed_share_and_short_lists():
    assert recommend.consumed_share(RECS, {"a": ["2"], "e": ["1", "2"]}) == pytest.approx(3 / 9)
    assert recommend.consumed_share({"a": []}, {"a": ["1"]}) == 0.0
    # b has 1 item, c 2, and z none at all: short of 3; a and e are full.
    assert recommend.short_lists(RECS, ["a", "b", "c", "e", "z"], n=3) == 3
