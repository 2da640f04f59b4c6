"""Why a user is in their segment: nearest centroids, the margin's verdict, items by pull."""

from __future__ import annotations

import numpy as np
import pytest

from models.clustering import KMeansParams, StreamingKMeans
from stream.core.catalogue import CatalogueItem
from stream.core.explain import DigestIndex, explain, verdict
from stream.core.user_state import UserState


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def model_with(centroids: list[list[float]], margin: float = 0.05) -> StreamingKMeans:
    model = StreamingKMeans(KMeansParams(k=len(centroids), seed_users=1, margin=margin), dim=2, version=7)
    model.centroids = np.array(centroids, dtype=np.float64)
    return model


CATALOGUE = {
    "sw": CatalogueItem(unit(1.0, 0.05), ("Action", "Sci-Fi"), "Star Wars"),
    "casablanca": CatalogueItem(unit(0.0, 1.0), ("Drama",)),
    "alien": CatalogueItem(unit(1.0, 0.5), ("Horror",)),
    "never-acted-on": CatalogueItem(unit(1.0, 0.0), ()),
}
LABELS = ["space", "romance", "noir", "westerns"]


def user(segment: int | None, direction: np.ndarray, items: list[str]) -> UserState:
    state = UserState("u1", vector_sum=direction * 3.0, segment=segment, model_version=6, reviews=2)
    for item_id in items:
        state.touch_item(item_id, keep=50)
    state.touch_item("gone-from-catalogue", keep=50)
    return state


def test_nearest_three_in_ascending_order_with_labels_and_items_ranked_by_pull():
    model = model_with([[0.9, 0.0], [0.0, 0.9], [-0.9, 0.0], [0.0, -0.9]])
    state = user(0, unit(1.0, 0.2), ["casablanca", "sw", "alien"])
    index = DigestIndex().lookup([k.encode() for k in CATALOGUE])
    out = explain(state, model, LABELS, CATALOGUE, index)
    nearest = out["nearest"]
    assert [n["segment"] for n in nearest] == [0, 1, 3]
    assert [n["distance"] for n in nearest] == sorted(n["distance"] for n in nearest)
    expected = np.linalg.norm(model.centroids[0] - state.vector)
    assert nearest[0]["distance"] == pytest.approx(expected, abs=1e-4) and nearest[0]["label"] == "space"
    assert out["segment"] == 0 and out["label"] == "space" and out["decision"] == "nearest"
    assert out["model_version"] == 7 and out["assigned_under_version"] == 6 and out["margin"] == 0.05
    # Items the user acted on, by cosine to segment 0's centroid (the x axis): 'sw', 'alien', 'casablanca'.
    assert [i["item_id"] for i in out["items"]] == ["sw", "alien", "casablanca"]
    assert out["items"][0]["categories"] == ["Action", "Sci-Fi"] and out["items"][0]["title"] == "Star Wars"
    assert out["items"][1]["title"] is None  # no title: people see the id
    assert out["items"][0]["similarity"] == pytest.approx(float(unit(1.0, 0.05)[0]), abs=1e-4)
    assert out["items_unresolved"] == 1  # the digest no catalogue id has
    assert "'Star Wars' (Action, Sci-Fi) is the closest of your items to this segment" in out["summary"]
    assert out["review_terms"] == [] and "no review terms: reviews are not kept per user (2 counted)" in out["summary"]


def test_kept_by_the_margin_and_moved_past_it():
    # Segment 1 is the nearest, segment 0 (the user's) 0.02 farther: within a margin of 10% of
    # 0.40, kept; past one of 2% of it, moves.
    ranked = [(1, 0.40), (0, 0.42), (2, 0.9)]
    assert verdict(0, ranked, 0.1, []) == (
        "kept",
        "kept in segment 0 although segment 1 is 0.020 closer: the margin is 0.040 (10% of that centroid's distance 0.400)",
    )
    decision, why = verdict(0, ranked, 0.02, [])
    assert decision == "moves" and why == (
        "moves from segment 0 to segment 1 at the next assignment: it is 0.020 closer, "
        "more than the margin 0.008 (2% of its distance 0.400)"
    )
    decision, why = verdict(0, ranked, 0.1, [1])  # just re-seeded: the margin does not apply
    assert decision == "moves" and "re-seeded" in why
    assert verdict(1, ranked, 0.05, []) == (
        "nearest", "in segment 1 because its centroid is the nearest (distance 0.400); the next, segment 0, is 0.020 farther"
    )


def test_the_verdict_agrees_with_the_models_own_prediction():
    state = user(0, unit(1.0, 0.125), [])  # segment 1 is 0.0017 closer than segment 0
    for margin, decision, predicted in [(0.05, "kept", 0), (0.001, "moves", 1)]:
        model = model_with([[0.9, 0.1], [0.9, 0.14]], margin=margin)
        out = explain(state, model, LABELS, CATALOGUE, {})
        assert out["decision"] == decision
        assert model.predict(state.vector[None, :], np.array([0]))[0][0] == predicted
    assert out["summary"][1] == "none of your recent items is known to the catalogue"


def test_no_segment_yet_says_so():
    unseeded = StreamingKMeans(KMeansParams(k=2, seed_users=10), dim=2)
    out = explain(UserState("u2"), unseeded, LABELS, CATALOGUE, {})
    assert out["decision"] == "unassigned" and out["nearest"] == [] and out["items"] == []
    assert out["summary"] == ["no segment yet: the model is not seeded", "no review terms: reviews are not kept per user"]
    seeded = model_with([[1.0, 0.0], [0.0, 1.0]])
    assert explain(UserState("u3"), seeded, LABELS, CATALOGUE, {})["summary"][0] == "no segment yet: no event with a vector"
    waiting = explain(user(None, unit(1.0, 0.0), []), seeded, LABELS, CATALOGUE, {})
    assert waiting["summary"][0] == "no segment yet: the next sweep assigns one" and waiting["nearest"] == []


def test_digest_index_is_rebuilt_only_when_the_catalogue_size_changes():
    index = DigestIndex()
    first = index.lookup([b"a", b"b"])
    assert sorted(sum(first.values(), [])) == ["a", "b"]
    assert index.lookup([b"c", b"d"]) is first  # same size: the cached map
    assert sorted(sum(index.lookup([b"a", b"b", b"c"]).values(), [])) == ["a", "b", "c"]
