"""What a person reads from segment counts: smoothed lift with minimum support, labels that
differ, evidence, and rankings that survive old and new events side by side."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from models.portraits import PRIOR_EVENTS, effective_events, rank, unique_labels
from models.profiles import SegmentProfiles
from models.tokens import review_terms
from stream.datasets import bbc, chinese_reviews

DAY = 86_400.0
T0 = 1_700_000_000.0


def test_effective_events_count_equal_weights_and_only_the_recent_once_old_ones_decayed():
    assert effective_events(5.0, 5.0) == pytest.approx(5)  # five events of weight 1
    assert effective_events(0.5, 0.05) == pytest.approx(5)  # the same, stored in other units
    old, new = [1e-79] * 500, [1.0] * 20
    weights = old + new
    assert effective_events(sum(weights), sum(w * w for w in weights)) == pytest.approx(20)
    assert effective_events(0.0, 0.0) == 0.0


def test_rank_is_smoothed_lift_keys_with_support_first_and_the_order_is_the_lift():
    counts = [{"Sci-Fi": 30.0, "Drama": 50.0, "Noir": 1.0}, {"Drama": 90.0, "Comedy": 40.0}]
    ranked = rank(counts, [100.0, 100.0], [100.0, 100.0])
    sci_fi, drama = ranked[0][0], ranked[0][1]
    assert [r.key for r in ranked[0]] == ["Sci-Fi", "Drama", "Noir"]  # Noir: one event, last
    # Sci-Fi: 30 observed, 30 of 200 events overall -> 15 expected in 100
    assert sci_fi.lift == pytest.approx((30 + PRIOR_EVENTS) / (15 + PRIOR_EVENTS))
    assert drama.lift == pytest.approx((50 + PRIOR_EVENTS) / (70 + PRIOR_EVENTS)) and drama.lift < 1
    assert [r.key for r in ranked[1]] == ["Comedy", "Drama"]


def test_a_key_seen_once_gets_no_huge_lift():
    counts = [{"niche": 2.0, "common": 100.0}, {"common": 10_000.0}]
    ranked = rank(counts, [100.0, 10_000.0], [100.0, 10_000.0])
    niche = next(r for r in ranked[0] if r.key == "niche")
    assert niche.lift < 1.3  # 2 events: raw lift would be 102x


def test_a_word_every_segment_uses_labels_none_of_them():
    topics = (["striker", "keeper", "league"], ["chip", "software", "server"], ["actor", "director", "cinema"])
    profiles = SegmentProfiles(k=3, half_life_s=DAY)
    for segment, words in enumerate(topics):
        for n in range(30):
            profiles.add_review(segment, f"officials said {words[n % 3]}", T0)
    for segment, words in enumerate(topics):
        assert set(profiles.profile(segment)["label"].split(" · ")) == set(words)


def test_segments_with_the_same_top_keys_get_different_labels_most_evidence_first():
    labels = unique_labels([["a", "b", "c", "d"], ["a", "b", "c", "e"], ["a", "b", "c"]], order=[1, 0, 2])
    assert labels[1] == "a · b · c"  # most evidence: its first choice
    assert labels[0] == "a · b · d"  # falls back to its next distinctive key
    assert labels[2] == "a · b"  # every three of its keys were taken: fewer parts
    assert unique_labels([[], ["x"]], order=[0, 1]) == ["segment 0", "x"]


def test_evidence_says_thin_below_the_floor_of_events_or_users():
    profiles = SegmentProfiles(k=2, half_life_s=DAY)
    for n in range(60):
        profiles.add_action(0, f"m{n % 5}", ["Drama"], "view", 1.0, T0)
    profiles.add_action(1, "m1", ["Drama"], "view", 1.0, T0)
    big, small = profiles.profiles(users=[40, 3])
    assert big["evidence"] == {"users": 40, "events": 60.0, "reviews": 0.0, "behaviours": 60.0, "thin": False}
    assert small["evidence"]["thin"] and small["label"] == "segment 1"
    assert profiles.profile(0, users=5)["evidence"]["thin"]  # enough events, too few users


def bbc_profiles(fresh: list[bbc.Article]) -> tuple[SegmentProfiles, list[str]]:
    """BBC's 2004 articles in one segment per label, then ``fresh`` ones dated today."""
    articles = bbc.articles()
    labels = sorted({a.label for a in articles})
    fresh_ids = {a.article_id for a in fresh}
    profiles = SegmentProfiles(k=len(labels), half_life_s=30 * DAY)
    for n, article in enumerate(a for a in articles if a.article_id not in fresh_ids):
        profiles.add_review(labels.index(article.label), article.text, 1_100_000_000.0 + n, f"old-{n}")
    for n, article in enumerate(fresh):
        profiles.add_review(labels.index(article.label), article.text, time.time() - n, f"new-{n}")
    return profiles, labels


def test_bbc_keeps_five_labels_of_its_own_topics_when_fresh_articles_join_the_old():
    articles = bbc.articles()
    words_of = {label: Counter() for label in {a.label for a in articles}}
    for article in articles:
        words_of[article.label].update(set(review_terms(article.text)))
    old, labels = bbc_profiles([])
    fresh = [a for a in articles if a.label == "tech"][-108:]  # old weights decay to 1e-81 beside them
    mixed, _ = bbc_profiles(fresh)
    before = [p["label"] for p in old.profiles()]
    after = [p["label"] for p in mixed.profiles()]
    assert len(set(after)) == 5
    for segment, label in enumerate(labels):
        for word in after[segment].split(" · "):
            assert max(words_of, key=lambda topic: words_of[topic][word] / sum(words_of[topic].values())) == label
        if label != "tech":
            assert set(after[segment].split(" · ")) & set(before[segment].split(" · "))
    assert mixed.profile(labels.index("tech"))["evidence"]["reviews"] == pytest.approx(108, rel=0.01)


def test_fresh_reviews_in_one_segment_leave_the_other_labels_their_own_words():
    """The issue's case: 108 reviews dated today beside the 2004 articles. On raw decayed
    weights every old word got the same idf, and four of five labels read "said · year · ..."."""
    old, labels = bbc_profiles([])
    mixed, _ = bbc_profiles([])
    for n, review in enumerate(chinese_reviews.reviews()[:108]):
        mixed.add_review(labels.index("entertainment"), review.text, time.time() - n, f"reviewer-{n}")
    before = [p["label"] for p in old.profiles()]
    after = [p["label"] for p in mixed.profiles()]
    assert len(set(after)) == 5
    for segment, label in enumerate(labels):
        if label != "entertainment":
            words = after[segment].split(" · ")
            assert "said" not in words and len(set(words) & set(before[segment].split(" · "))) >= 2, (before, after)
