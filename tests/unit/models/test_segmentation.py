"""The segmentation: model and profiles together; learned once per offset by the owner, adopted
by workers only when newer, and read back from its bytes."""

import numpy as np
import pytest

from models.clustering import KMeansParams
from models.profiles import ProfileParams
from models.segmentation import ModelUpdate, Segmentation, SegmentationParams

PARAMS = SegmentationParams(KMeansParams(k=2, seed_users=2), ProfileParams(2, 86_400.0))


def top(profiles, segment, n):
    """The ``n`` items of the highest decayed count (ties by id)."""
    counts = profiles.item_counts(segment)
    return sorted(counts, key=lambda i: (-counts[i], i))[:n]


def update_of(segmentation: Segmentation, users: dict[str, list[float]], segment: int | None = None) -> ModelUpdate:
    update = segmentation.new_update()
    for user, vector in users.items():
        update.stats.observe(user, np.asarray(vector, dtype=np.float32), segment)
    return update


def seeded() -> Segmentation:
    segmentation = Segmentation.new(PARAMS, 2)
    segmentation.learn(update_of(segmentation, {"a": [1, 0], "b": [0, 1]}), 0)
    return segmentation


def test_an_empty_update_is_false_and_one_with_anything_is_true():
    segmentation = Segmentation.new(PARAMS, 2)
    update = segmentation.new_update()
    assert not update
    update.profiles.add_action(0, "i1", ("Drama",), "view", 1.0, 0.0)
    assert update
    assert update_of(segmentation, {"a": [1, 0]})


def test_updates_are_learned_once_in_offset_order_with_their_profile_counts():
    segmentation = seeded()
    assert segmentation.version == 1 and segmentation.model.updates_offset == 0
    update = update_of(segmentation, {"c": [1, 0]}, segment=0)
    update.profiles.add_action(0, "i1", ("Drama",), "view", 1.0, 0.0)
    assert segmentation.learn(update, 3) and segmentation.version == 2
    assert not segmentation.learn(update, 3) and not segmentation.learn(update, 1)
    assert top(segmentation.profiles, 0, 5) == ["i1"]


def test_a_worker_adopts_only_newer_publications_and_sweeps_only_for_new_versions():
    owner, worker = seeded(), Segmentation.new(PARAMS, 2)
    assert worker.adopt(Segmentation.from_bytes(owner.to_bytes(), PARAMS, 2))
    moves = owner.new_update()
    moves.stats.census = {0: np.array([1, 0])}
    owner.learn(moves, 1)  # sizes only: same version, later offset
    assert not worker.adopt(Segmentation.from_bytes(owner.to_bytes(), PARAMS, 2))
    assert worker.model.sizes.tolist() == owner.model.sizes.tolist() and worker.model.updates_offset == 1
    stale = Segmentation.new(PARAMS, 2)
    assert not worker.adopt(stale) and worker.version == 1


def test_bytes_round_trip_and_a_model_of_another_shape_is_refused():
    owner = seeded()
    back = Segmentation.from_bytes(owner.to_bytes(), PARAMS, 2)
    np.testing.assert_array_equal(back.model.centroids, owner.model.centroids)
    assert back.model.history == owner.model.history and back.params == PARAMS
    with pytest.raises(ValueError, match="k=2, dim=2.*k=3, dim=2"):
        Segmentation.from_bytes(owner.to_bytes(), SegmentationParams(KMeansParams(k=3, seed_users=3), ProfileParams(3, 1.0)), 2)
    with pytest.raises(ValueError, match="dim=5"):
        Segmentation.from_bytes(owner.to_bytes(), PARAMS, 5)
    predicted, _ = back.predict(np.array([[0.9, 0.1], [0.1, 0.9]]))
    assert predicted.tolist() == owner.predict(np.array([[0.9, 0.1], [0.1, 0.9]]))[0].tolist()
