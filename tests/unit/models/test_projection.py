"""The map's projection: PCA of the centroids that stays still while they do and never mirrors."""

import numpy as np
import pytest

from models.projection import StableProjection


def centroids(seed: int = 0, k: int = 4, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(k, dim))


def test_the_centroids_spread_along_the_axes_with_the_largest_loading_positive():
    c = centroids()
    projection = StableProjection()
    assert projection.fit(c)
    points = projection.project(c)
    assert points.shape == (4, 2)
    assert np.allclose(points.mean(axis=0), 0.0)
    assert points[:, 0].var() >= points[:, 1].var()
    assert sum(projection.explained) <= 1.0 + 1e-9 and projection.explained[0] >= projection.explained[1]
    for axis in projection.axes:
        assert axis[np.argmax(np.abs(axis))] > 0


def test_unchanged_centroids_are_not_refitted_and_points_stay_put():
    c = centroids()
    projection = StableProjection()
    projection.fit(c)
    users = np.random.default_rng(1).normal(size=(10, 16))
    before = projection.project(users)
    assert not projection.fit(c.copy())
    assert projection.fits == 1 and np.array_equal(projection.project(users), before)


def test_a_refit_after_a_small_move_keeps_the_previous_orientation_whatever_sign_the_svd_returns():
    c = centroids()
    projection = StableProjection()
    projection.fit(c)
    projection.axes = -projection.axes  # as if the last fit had come out mirrored
    before = projection.project(c)
    assert projection.fit(c + 1e-3 * centroids(seed=2))
    assert projection.fits == 2
    assert np.abs(projection.project(c) - before).max() < 0.05  # not mirrored back: moved a little


def test_two_centroids_give_one_axis_and_a_flat_second():
    projection = StableProjection()
    projection.fit(centroids(k=2))
    assert np.allclose(projection.project(centroids(k=2))[:, 1], 0.0)
    assert projection.explained[1] == 0.0


def test_projecting_before_fitting_is_an_error():
    with pytest.raises(ValueError, match="fit the projection"):
        StableProjection().project(np.zeros((1, 16)))
