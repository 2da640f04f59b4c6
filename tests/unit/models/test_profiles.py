"""Segment profiles: counting, shares, action mix, popularity, decay, pruning, persistence
(ranking and labels: test_portraits.py)."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from models.profiles import SegmentProfiles
from models.tokens import review_terms

DAY = 86_400.0
WEEK = 7 * DAY
T0 = 1_700_000_000.0  # epoch seconds, November 2023

SPORTS = [
    "The striker scored twice as United beat City in the derby, according to news from the stadium.",
    "Late goal gives the champions victory; the coach praised the striker in the news conference.",
    "Injury news: the goalkeeper misses the cup final.",
]
TECH = [
    "The chipmaker unveiled a faster processor for laptops, news from the developer conference.",
    "Security news: a software update patches flaws in the browser.",
    "Startup raises funding to build open source software for cloud servers, news reports say.",
]
MOVIES = [
    "A haunting thriller with a brilliant cast; the news of its sequel thrilled fans.",
    "The animated comedy made the whole family laugh, news critics agree.",
]


def top(profiles, segment, n):
    """The ``n`` items of the highest decayed count (ties by id)."""
    counts = profiles.item_counts(segment)
    return sorted(counts, key=lambda i: (-counts[i], i))[:n]


def deep_approx_equal(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal structure, equal strings and order, floats within ``rel``."""
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)
    if isinstance(a, dict):
        return list(a) == list(b) and all(deep_approx_equal(a[key], b[key], rel) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(deep_approx_equal(x, y, rel) for x, y in zip(a, b))
    return a == b


def news_profiles(k: int = 3) -> SegmentProfiles:
    """Segments 0-2 read sports, technology and film news, all reviews at one time."""
    profiles = SegmentProfiles(k=k, half_life_s=WEEK)
    for segment, texts in enumerate((SPORTS, TECH, MOVIES)):
        for text in texts:
            profiles.add_review(segment, text, T0)
    return profiles


# --- tokenization --------------------------------------------------------------------------



def test_a_term_counts_once_per_review():
    profiles = SegmentProfiles(k=1, half_life_s=WEEK)
    for _ in range(2):
        profiles.add_review(0, "goal goal goal goal goal", T0)
        profiles.add_review(0, "match", T0)
    shares = {t["term"]: t["share"] for t in profiles.profile(0)["top_terms"]}
    assert shares == pytest.approx({"goal": 0.5, "match": 0.5})


# --- categories, actions, items ------------------------------------------------------------


def test_category_share_and_smoothed_lift():
    profiles = SegmentProfiles(k=2, half_life_s=WEEK)
    for _ in range(10):
        profiles.add_action(0, "annie-hall", ["Comedy"], "view", 1.0, T0)
        profiles.add_action(0, "amelie", ["Comedy", "Drama"], "view", 1.0, T0)
        for movie in ("schindlers-list", "the-pianist", "moonlight"):
            profiles.add_action(1, movie, ["Drama"], "view", 1.0, T0)
    # 20 behaviours in segment 0 (Comedy in 20, Drama in 10), 30 in segment 1 (Drama in all)
    cats = {c["category"]: c for c in profiles.profile(0)["top_categories"]}
    assert cats["Comedy"]["share"] == pytest.approx(1.0) and cats["Comedy"]["events"] == pytest.approx(20)
    # observed 20 + prior 10 over expected 20 * 20 / 50 + prior 10
    assert cats["Comedy"]["lift"] == pytest.approx(30 / 18)
    assert cats["Drama"]["lift"] == pytest.approx(20 / (20 * 40 / 50 + 10))
    drama = profiles.profile(1)["top_categories"]
    assert [c["category"] for c in drama] == ["Drama"] and drama[0]["lift"] == pytest.approx(40 / (30 * 40 / 50 + 10))
    assert [c["category"] for c in profiles.profile(0)["top_categories"]] == ["Comedy", "Drama"]


def test_items_and_the_segment_read_as_shares_with_the_decayed_weights_in_detail():
    profiles = SegmentProfiles(k=2, half_life_s=WEEK)
    for _ in range(4):
        profiles.add_action(0, "amelie", ["Comedy"], "purchase", 3.0, T0)
        profiles.add_action(0, "annie-hall", ["Comedy"], "view", 1.0, T0)
    profiles.add_action(1, "amelie", ["Comedy"], "view", 1.0, T0 + WEEK)  # halves segment 0's weights
    portrait = profiles.profile(0)
    items = {i["item_id"]: i for i in portrait["top_items"]}
    assert items["amelie"]["share"] == pytest.approx(0.75) and items["annie-hall"]["share"] == pytest.approx(0.25)
    assert portrait["evidence"]["behaviours"] == pytest.approx(8)  # eight events of equal weight
    assert portrait["event_share"] == pytest.approx(4.0 / 5.0)  # 8 events at half weight, 1 at full
    detail = portrait["detail"]
    assert detail["weight"] == pytest.approx(4.0) and detail["category_weights"] == pytest.approx({"Comedy": 8.0})
    assert detail["item_weights"] == pytest.approx({"amelie": 6.0, "annie-hall": 2.0})


def test_each_category_gets_the_full_weight_of_the_action():
    profiles = SegmentProfiles(k=1, half_life_s=WEEK)
    for _ in range(2):
        profiles.add_action(0, "amelie", ["Comedy", "Romance", "Comedy"], "purchase", 3.0, T0)
        profiles.add_action(0, "the-shining", ["Horror"], "view", 0.5, T0)
    shares = {c["category"]: c["share"] for c in profiles.profile(0)["top_categories"]}
    # a share is of the behaviours' weight (3.5 a pair)
    assert shares == pytest.approx({"Comedy": 3 / 3.5, "Romance": 3 / 3.5, "Horror": 0.5 / 3.5})
    assert list(shares)[-1] == "Horror"  # 0.6 of the four events: too little support to rank before them


def test_action_mix_counts_events_not_weights():
    profiles = SegmentProfiles(k=1, half_life_s=WEEK)
    for item in ("laptop", "phone", "tablet"):
        profiles.add_action(0, item, ["Electronics"], "view", 0.5, T0)
    profiles.add_action(0, "laptop", ["Electronics"], "purchase", 3.0, T0)
    profile = profiles.profile(0)
    assert profile["actions"] == pytest.approx({"view": 0.75, "purchase": 0.25})
    assert list(profile["actions"]) == ["view", "purchase"]
    assert profile["detail"]["weight"] == pytest.approx(4.0)


def test_item_counts_per_segment_and_summed_over_segments():
    profiles = SegmentProfiles(k=2, half_life_s=WEEK)
    profiles.add_action(0, "m1", ["Drama"], "purchase", 3.0, T0)
    profiles.add_action(0, "m3", ["Drama"], "click", 1.0, T0)
    profiles.add_action(0, "m2", ["Drama"], "click", 1.0, T0)
    profiles.add_action(1, "m2", ["Comedy"], "purchase", 3.0, T0)
    profiles.add_action(1, "m4", ["Comedy"], "click", 1.0, T0)

    assert profiles.item_counts(0) == pytest.approx({"m1": 3.0, "m2": 1.0, "m3": 1.0})
    assert profiles.item_counts(None) == pytest.approx({"m1": 3.0, "m2": 4.0, "m3": 1.0, "m4": 1.0})
    assert top(profiles, None, 3) == ["m2", "m1", "m3"]


def test_top_items_rank_what_sets_a_segment_apart():
    profiles = SegmentProfiles(k=2, half_life_s=WEEK)
    for _ in range(5):
        for segment in (0, 1):
            profiles.add_action(segment, "star-wars", ["Sci-Fi"], "purchase", 3.0, T0)
        profiles.add_action(0, "alien", ["Sci-Fi", "Horror"], "purchase", 2.0, T0)
    assert [i["item_id"] for i in profiles.profile(0)["top_items"]] == ["alien", "star-wars"]
    assert top(profiles, 0, 1) == ["star-wars"]


def test_invalid_input_is_rejected_before_anything_is_counted():
    profiles = SegmentProfiles(k=2, half_life_s=WEEK)
    with pytest.raises(ValueError):
        profiles.add_review(2, "goal", T0)
    with pytest.raises(ValueError):
        profiles.add_action(0, "m1", [], "view", -1.0, T0)
    with pytest.raises(ValueError):
        profiles.add_review(0, "goal", math.nan)
    with pytest.raises(ValueError):
        profiles.profile(0, top=-1)
    assert profiles.profiles() == SegmentProfiles(k=2, half_life_s=WEEK).profiles()


# --- decay ---------------------------------------------------------------------------------


def test_an_event_one_half_life_old_weighs_half():
    profiles = SegmentProfiles(k=2, half_life_s=WEEK)
    profiles.add_action(0, "m1", ["Drama"], "view", 1.0, T0)
    profiles.add_action(1, "m2", ["Drama"], "view", 1.0, T0 + WEEK)
    assert profiles.profile(0)["detail"]["weight"] == pytest.approx(0.5)
    assert profiles.profile(1)["detail"]["weight"] == pytest.approx(1.0)
    # a late event is decayed against the latest time seen, not counted as new
    profiles.add_review(1, "late review", T0 - WEEK)
    assert profiles.profile(1)["detail"]["weight"] == pytest.approx(1.25)


def test_recent_taste_dominates_old_taste():
    profiles = SegmentProfiles(k=1, half_life_s=WEEK)
    for movie in ("heat", "ronin", "collateral"):
        profiles.add_action(0, movie, ["Thriller"], "purchase", 3.0, T0)
    for _ in range(2):
        profiles.add_action(0, "paddington", ["Family"], "purchase", 3.0, T0 + 2 * WEEK + DAY)
    profile = profiles.profile(0)
    shares = {c["category"]: c["share"] for c in profile["top_categories"]}
    assert list(shares) == ["Family", "Thriller"]  # the three old thrillers weigh under two events now
    assert top(profiles, 0, 1) == ["paddington"]
    assert profile["detail"]["weight"] == pytest.approx(2 + 3 * 2 ** (-(2 * WEEK + DAY) / WEEK))


def test_event_time_spans_of_thousands_of_half_lives_stay_finite():
    profiles = SegmentProfiles(k=1, half_life_s=1.0)
    for ts in range(0, 5001, 100):
        profiles.add_action(0, f"item{ts}", ["News"], "view", 1.0, T0 + ts)
    profiles.add_action(0, "late", ["News"], "view", 1.0, T0 + 4999)
    profile = profiles.profile(0)
    assert profile["detail"]["weight"] == pytest.approx(1.5)
    assert top(profiles, 0, 3) == ["item5000", "late", "item4900"]


def interleaved_events() -> list[tuple[str, tuple[Any, ...]]]:
    """Reviews and actions of three segments spread over six weeks."""
    events: list[tuple[str, tuple[Any, ...]]] = []
    for i, text in enumerate(SPORTS * 3):
        events.append(("review", (0, text, T0 + i * 3.7 * DAY)))
    for i, text in enumerate(TECH * 3):
        events.append(("review", (1, text, T0 + i * 4.1 * DAY + 3600)))
    for i, text in enumerate(MOVIES * 2):
        events.append(("review", (2, text, T0 + i * 9.3 * DAY)))
    catalogue = [
        ("match-ticket", ["Football", "Events"]),
        ("laptop", ["Electronics", "Computers"]),
        ("heat", ["Thriller", "Crime"]),
        ("paddington", ["Family", "Comedy"]),
    ]
    actions = [("view", 0.5), ("click", 1.0), ("cart", 2.0), ("purchase", 3.0)]
    for i in range(60):
        item, categories = catalogue[i % 4]
        action, weight = actions[(i * 7) % 4]
        events.append(("action", (i % 3, item, categories, action, weight, T0 + i * 0.71 * DAY)))
    return events


def replay(events: list[tuple[str, tuple[Any, ...]]], half_life_s: float = WEEK) -> SegmentProfiles:
    profiles = SegmentProfiles(k=3, half_life_s=half_life_s)
    for kind, args in events:
        if kind == "review":
            profiles.add_review(*args)
        else:
            profiles.add_action(*args)
    return profiles


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("half_life_s", [WEEK, DAY / 20], ids=["week", "rebasing"])
def test_arrival_order_does_not_change_the_result(seed: int, half_life_s: float):
    events = interleaved_events()
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    a, b = replay(events, half_life_s), replay(shuffled, half_life_s)
    assert deep_approx_equal(a.profiles(top=20), b.profiles(top=20))
    for segment in (0, 1, 2, None):
        assert top(a, segment, 4) == top(b, segment, 4)


# --- bounded memory ------------------------------------------------------------------------


def test_pruning_keeps_the_biggest_terms_and_prunes_in_bulk():
    fruits = ["apple", "banana", "cherry", "damson", "elderberry", "fig", "grape", "huckleberry",
              "kiwi", "lemon", "mango", "nectarine"]
    profiles = SegmentProfiles(k=1, half_life_s=WEEK, max_terms=10)
    for i, fruit in enumerate(fruits):  # apple in 12 reviews, banana in 11, ... nectarine in 1
        for _ in range(len(fruits) - i):
            profiles.add_review(0, fruit, T0)
    kept = [t["term"] for t in profiles.profile(0, top=100)["top_terms"]]
    # the 11th term triggered a prune down to 9 terms; the 12th did again
    assert sorted(kept) == sorted(fruits[:9])


def test_pruning_keeps_the_heaviest_items():
    profiles = SegmentProfiles(k=1, half_life_s=WEEK, max_items=20)
    weights = list(range(1, 22))
    random.Random(3).shuffle(weights)
    for w in weights:
        profiles.add_action(0, f"item{w:02d}", ["Books"], "purchase", float(w), T0)
    # the 21st item pushed the count over 20: down to 90% of the bound, the 18 heaviest
    assert top(profiles, 0, 100) == [f"item{w:02d}" for w in range(21, 3, -1)]


# --- persistence ---------------------------------------------------------------------------


def test_round_trip_gives_identical_profiles_and_keeps_counting_identically():
    events = interleaved_events()
    original = replay(events[:-10])
    restored = SegmentProfiles.from_bytes(original.to_bytes())
    assert restored.k == 3
    assert restored.profiles(top=50) == original.profiles(top=50)
    assert restored.to_bytes() == original.to_bytes()
    for segment in (0, 1, 2, None):
        assert top(restored, segment, 10) == top(original, segment, 10)
    for profiles in (original, restored):
        for kind, args in events[-10:]:
            if kind == "review":
                profiles.add_review(*args)
            else:
                profiles.add_action(*args)
    assert restored.profiles(top=50) == original.profiles(top=50)


def test_serialised_state_holds_terms_not_review_text():
    raw = news_profiles().to_bytes()
    assert b"striker" in raw
    assert SPORTS[2].encode() not in raw and b"goalkeeper misses" not in raw
    assert b'"the"' not in raw


def test_empty_round_trip_and_unknown_format():
    empty = SegmentProfiles(k=4, half_life_s=DAY, max_terms=100, max_items=50)
    back = SegmentProfiles.from_bytes(empty.to_bytes())
    assert (back.k, back.half_life_s, back.max_terms, back.max_items) == (4, DAY, 100, 50)
    assert back.profiles() == empty.profiles()
    with pytest.raises(ValueError):
        SegmentProfiles.from_bytes(b'{"format": 99}')


def test_a_member_who_moves_takes_their_counts_from_one_segment_to_the_other():
    from models.member_counts import MemberCounts

    member = MemberCounts()
    for n in range(4):
        member.add_behaviour(f"m{n % 2}", ["Noir"], "view", 1.0, T0 + n * DAY, WEEK)
        member.add_review(review_terms("rainy city detective"), T0 + n * DAY, WEEK)
    owner = SegmentProfiles(k=2, half_life_s=WEEK)
    owner.add_action(0, "other", ["Comedy"], "view", 1.0, T0)
    joined = SegmentProfiles.new_like(owner)
    joined.add_member(0, member, "u1")
    owner.merge(joined)
    assert owner.profile(0)["evidence"]["behaviours"] > 3.9  # four of theirs, one decayed other
    moved, left = SegmentProfiles.new_like(owner), SegmentProfiles.new_like(owner)
    moved.add_member(1, member, "u1")
    left.add_member(0, member, "u1")
    owner.merge(moved)
    owner.subtract(left)
    zero, one = owner.to_doc()["segments"]
    assert set(zero["items"]) == {"other"} and set(zero["categories"]) == {"Comedy"} and zero["terms"] == {}
    assert zero["reviews"] == pytest.approx(0, abs=1e-9) and set(one["items"]) == {"m0", "m1"}
    assert set(one["terms"]) == {"rainy", "city", "detective"}
    assert owner.profile(1)["label"] == "Noir"  # what they brought (their words are all anyone wrote: lift 1)
    assert Counter(MemberCounts.from_bytes(member.to_bytes()).totals.items) == pytest.approx(Counter(member.totals.items), rel=1e-6)
