"""Clustering figures: plain functions over the final user vectors and their segments."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
    silhouette_score,
)

from models.clustering import inertia

SILHOUETTE_SAMPLE = 5000
DUNN_SAMPLE = 2000  # Dunn's index compares every pair: 2,000 rows are a 32 MB distance matrix


def batch_kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn KMeans(n_clusters=k, n_init, random_state=seed) on ``x``: (labels, centers)."""
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(np.asarray(x, dtype=np.float64))
    return km.labels_.astype(np.int64), km.cluster_centers_


def inertia_ratio(x: np.ndarray, stream_centroids: np.ndarray, batch_centroids: np.ndarray) -> float:
    """Inertia of the streaming centroids over that of the batch centroids (>= 1: batch is better)."""
    denominator = inertia(x, batch_centroids)
    numerator = inertia(x, stream_centroids)
    if denominator == 0.0:
        return 1.0 if numerator == 0.0 else math.inf
    return numerator / denominator


def _n_labels_ok(labels: np.ndarray) -> bool:
    n = len(np.unique(labels))
    return 2 <= n <= len(labels) - 1


def sample_indices(n: int, size: int = SILHOUETTE_SAMPLE, seed: int = 0) -> np.ndarray:
    """A fixed random sample (sorted) of at most ``size`` of ``n`` rows; all rows if n <= size."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def silhouette(x: np.ndarray, labels: np.ndarray, sample: int = SILHOUETTE_SAMPLE, seed: int = 0) -> float | None:
    """Mean silhouette, cosine distance, on a fixed random sample of at most ``sample`` rows.

    None when the (sampled) labels do not have between 2 and n - 1 distinct values.
    """
    idx = sample_indices(len(x), sample, seed)
    xs, ls = np.asarray(x)[idx], np.asarray(labels)[idx]
    if not _n_labels_ok(ls):
        return None
    return float(silhouette_score(xs, ls, metric="cosine"))


def calinski_harabasz(x: np.ndarray, labels: np.ndarray) -> float | None:
    if not _n_labels_ok(np.asarray(labels)):
        return None
    return float(calinski_harabasz_score(np.asarray(x, dtype=np.float64), labels))


def davies_bouldin(x: np.ndarray, labels: np.ndarray) -> float | None:
    if not _n_labels_ok(np.asarray(labels)):
        return None
    return float(davies_bouldin_score(np.asarray(x, dtype=np.float64), labels))


def dunn(x: np.ndarray, labels: np.ndarray, sample: int = DUNN_SAMPLE, seed: int = 0) -> float | None:
    """Dunn's index, Euclidean: the smallest distance between rows of different segments over
    the largest distance between rows of one segment (higher: tighter, better separated), on
    a fixed random sample of at most ``sample`` rows (it is quadratic). A singleton segment has
    diameter 0. None when the sample has fewer than 2 segments, or every segment's diameter is 0
    (the ratio would be infinite)."""
    idx = sample_indices(len(x), sample, seed)
    xs, ls = np.asarray(x, dtype=np.float64)[idx], np.asarray(labels)[idx]
    if len(np.unique(ls)) < 2:
        return None
    d = cdist(xs, xs)
    same = ls[:, None] == ls[None, :]
    diameter = float(d[same].max())
    if diameter == 0.0:
        return None
    return float(d[~same].min()) / diameter


def nmi(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Normalized mutual information (arithmetic normalisation, scikit-learn's default)."""
    return float(normalized_mutual_info_score(list(a), list(b)))


def ari(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Adjusted Rand index."""
    return float(adjusted_rand_score(list(a), list(b)))


def clustering_metrics(
    x: np.ndarray,
    segments: np.ndarray,
    stream_centroids: np.ndarray,
    k: int,
    seed: int = 0,
    truth: Sequence[Hashable | None] | None = None,
    batch: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float | int | None]:
    """All clustering figures for final vectors ``x`` and served segments ``segments``.

    ``truth``: reference labels aligned with ``x`` (None where a user has none). ``batch``: a
    precomputed :func:`batch_kmeans` result, to reuse across runs with the same ``x``.
    """
    labels_batch, centers_batch = batch if batch is not None else batch_kmeans(x, k, seed)
    out: dict[str, float | int | None] = {
        "users": int(len(x)),
        "segments_used": int(len(np.unique(segments))),
        "inertia_stream": inertia(x, stream_centroids),
        "inertia_batch": inertia(x, centers_batch),
        "inertia_ratio": inertia_ratio(x, stream_centroids, centers_batch),
        "silhouette": silhouette(x, segments, seed=seed),
        "calinski_harabasz": calinski_harabasz(x, segments),
        "davies_bouldin": davies_bouldin(x, segments),
        "dunn": dunn(x, segments, seed=seed),
        "nmi_vs_batch": nmi(segments, labels_batch),
        "ari_vs_batch": ari(segments, labels_batch),
    }
    if truth is not None:
        known = np.array([t is not None for t in truth], dtype=bool)
        ref = [t for t in truth if t is not None]
        out["labelled_users"] = int(known.sum())
        if known.any():
            out["nmi_vs_labels"] = nmi(segments[known], ref)
            out["ari_vs_labels"] = ari(segments[known], ref)
            out["batch_nmi_vs_labels"] = nmi(labels_batch[known], ref)
            out["batch_ari_vs_labels"] = ari(labels_batch[known], ref)
    return out
