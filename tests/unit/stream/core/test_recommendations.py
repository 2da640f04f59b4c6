"""Recommendations: popularity in the segment and closeness to the user, never an item acted on."""

import math

import numpy as np
import pytest

from models.profiles import SegmentProfiles
from stream.core.catalogue import CatalogueItem
from stream.core.recommendations import POPULARITY_FLOOR, SIMILARITY_WEIGHT, recommend

T0 = 1_700_000_000.0


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


CATALOGUE = {"space": CatalogueItem(unit(1, 0), ("Sci-Fi",)), "love": CatalogueItem(unit(0, 1), ("Romance",))}


def profiles_with(counts: dict[str, int]) -> SegmentProfiles:
    profiles = SegmentProfiles(k=1, half_life_s=86_400.0)
    for item, n in counts.items():
        for _ in range(n):
            profiles.add_action(0, item, [], "view", 1.0, T0)
    return profiles


def test_the_users_taste_outranks_a_little_more_popularity_and_the_score_is_the_formula():
    profiles = profiles_with({"space": 4, "love": 5})
    recs = recommend(profiles, CATALOGUE, 0, unit(1, 0.1), frozenset(), 2)
    assert [r.item_id for r in recs] == ["space", "love"]
    cos = float(unit(1, 0.1) @ unit(1, 0))
    assert recs[0].score == pytest.approx(math.log(4 / 5 + POPULARITY_FLOOR) + SIMILARITY_WEIGHT * cos, rel=1e-6)
    without_taste = recommend(profiles, CATALOGUE, 0, None, frozenset(), 2)
    assert [r.item_id for r in without_taste] == ["love", "space"]


def test_nothing_acted_on_is_served_and_a_short_segment_is_filled_from_everyone_once():
    profiles = profiles_with({"space": 4, "love": 5})
    assert [r.item_id for r in recommend(profiles, CATALOGUE, 0, None, {"love"}, 5)] == ["space"]
    assert recommend(profiles, CATALOGUE, None, None, frozenset(), 0) == []
