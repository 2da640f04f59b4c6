"""Clustering figures by hand; the inertia and nearest centroid are the model's own."""

from __future__ import annotations

import numpy as np
import pytest

from models.clustering import inertia, nearest
from stream.tools.evaluate import metrics, report


def test_inertia_nearest_labels_and_ratio():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    batch = np.array([[1.0, 0.0], [10.0, 0.0]])
    stream = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert nearest(x, batch).tolist() == [0, 0, 1]
    assert inertia(x, batch) == 2.0
    assert inertia(x, stream) == 4.0
    assert metrics.inertia_ratio(x, stream, batch) == 2.0
    assert metrics.inertia_ratio(x, batch, batch) == 1.0
    assert metrics.inertia_ratio(np.zeros((2, 2)), np.zeros((1, 2)), np.zeros((1, 2))) == 1.0
    assert inertia(np.zeros((0, 2)), batch) == 0.0


def test_silhouette_cosine_by_hand():
    # a, b in segment 0 (cosine distance 1 apart); c alone in segment 1 (distance 2 from a, 1 from b).
    # s(a) = (2 - 1) / 2, s(b) = (1 - 1) / 1, s(c) = 0 (a singleton): mean 1/6.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert metrics.silhouette(x, np.array([0, 0, 1])) == pytest.approx(1 / 6)
    separated = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
    assert metrics.silhouette(separated, np.array([0, 0, 1, 1])) == pytest.approx(1.0)
    assert metrics.silhouette(separated, np.array([0, 0, 0, 0])) is None


def test_sample_indices_are_fixed_and_bounded():
    assert metrics.sample_indices(4, 10).tolist() == [0, 1, 2, 3]
    a, b = metrics.sample_indices(1000, 50, seed=3), metrics.sample_indices(1000, 50, seed=3)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 50 and a.tolist() == sorted(a.tolist())


def test_calinski_harabasz_and_davies_bouldin_by_hand():
    # Centroids 1 and 11, overall mean 6: between = 4 * 25 = 100, within = 4 * 1 = 4.
    # CH = (100 / (2 - 1)) / (4 / (4 - 2)) = 50. DB = (1 + 1) / |11 - 1| = 0.2.
    x = np.array([[0.0], [2.0], [10.0], [12.0]])
    labels = np.array([0, 0, 1, 1])
    assert metrics.calinski_harabasz(x, labels) == pytest.approx(50.0)
    assert metrics.davies_bouldin(x, labels) == pytest.approx(0.2)
    assert metrics.calinski_harabasz(x, np.zeros(4, dtype=int)) is None
    assert metrics.davies_bouldin(x, np.zeros(4, dtype=int)) is None


def test_dunn_by_hand_and_degenerate_cases():
    # Two blobs on a line: {0, 1, 2} and {10, 11}. Closest pair across: 2 and 10 (8 apart);
    # widest blob: 0..2 (diameter 2). Dunn = 8 / 2 = 4.
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = np.array([0, 0, 0, 1, 1])
    assert metrics.dunn(x, labels) == pytest.approx(4.0)
    # A singleton segment has diameter 0: the other blobs set the denominator. 2 -> 5: 3 / 2.
    assert metrics.dunn(np.array([[0.0], [1.0], [2.0], [5.0]]), np.array([0, 0, 0, 1])) == pytest.approx(1.5)
    assert metrics.dunn(x, np.zeros(5, dtype=int)) is None  # one segment: no separation to measure
    assert metrics.dunn(np.array([[0.0], [3.0]]), np.array([0, 1])) is None  # only singletons: infinite
    # The sample bounds the work: it scores on at most ``sample`` rows, a fixed choice.
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(0, 0.1, (500, 2)), rng.normal(5, 0.1, (500, 2))])
    split = np.repeat([0, 1], 500)
    sampled = metrics.dunn(blobs, split, sample=100, seed=1)
    assert sampled == metrics.dunn(blobs, split, sample=100, seed=1) and sampled > 5


def test_nmi_and_ari_by_hand():
    assert metrics.nmi([0, 0, 1, 1], [5, 5, 7, 7]) == pytest.approx(1.0)
    assert metrics.ari([0, 0, 1, 1], ["b", "b", "a", "a"]) == pytest.approx(1.0)
    assert metrics.nmi([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(0.0)
    # All pairs split: index 0, expected (2 * 2) / C(4, 2) = 2/3, max 2: (0 - 2/3) / (2 - 2/3).
    assert metrics.ari([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)


def test_clustering_metrics_uses_only_labelled_users_and_a_given_batch():
    x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    segments = np.array([1, 1, 0, 0])
    batch = (np.array([0, 0, 1, 1]), np.array([[0.95, 0.05], [0.05, 0.95]]))
    out = metrics.clustering_metrics(x, segments, batch[1][::-1], 2, truth=["a", "a", None, "b"], batch=batch)
    assert out["users"] == 4 and out["segments_used"] == 2 and out["labelled_users"] == 3
    assert out["inertia_ratio"] == pytest.approx(1.0)
    assert out["nmi_vs_batch"] == pytest.approx(1.0) and out["ari_vs_batch"] == pytest.approx(1.0)
    assert out["nmi_vs_labels"] == pytest.approx(1.0) and out["batch_nmi_vs_labels"] == pytest.approx(1.0)
    # Across: (0.9, 0.1) to (0.1, 0.9) is 0.8 * sqrt(2); within: 0.1 * sqrt(2) each. Dunn = 8.
    assert out["dunn"] == pytest.approx(8.0)


def test_aggregate_mean_and_spread():
    assert report.aggregate([0.5, 0.7, None]) == {"mean": pytest.approx(0.6), "spread": pytest.approx(0.2), "values": [0.5, 0.7, None]}
    assert report.aggregate([None])["mean"] is None
