"""A 2-D picture of the segments: PCA fitted on the centroids, kept still while they are.

The axes are the two leading principal components of the current centroids, centred on their
mean. A PCA's components have no sign of their own, so a refit could mirror the whole picture:
each refit keeps the sign that agrees with the previous axes (the first fit: its largest loading
positive). Nothing is refitted while the centroids are unchanged, so points stay where they were.
"""

from __future__ import annotations

import numpy as np


class StableProjection:
    """Projects vectors onto the plane of the centroids' two leading principal components."""

    def __init__(self) -> None:
        self.centroids: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.axes: np.ndarray | None = None  # [2, dim], unit rows (a zero row: no second direction)
        self.explained: list[float] = [0.0, 0.0]  # share of the centroids' variance on each axis
        self.fits = 0

    def fit(self, centroids: np.ndarray) -> bool:
        """Refit on ``centroids`` [k, dim] unless they are the ones fitted; True when refitted."""
        centroids = np.asarray(centroids, dtype=np.float64)
        if self.centroids is not None and np.array_equal(centroids, self.centroids):
            return False
        mean = centroids.mean(axis=0)
        _, singular, vt = np.linalg.svd(centroids - mean, full_matrices=False)
        axes = np.zeros((2, centroids.shape[1]))
        # Only directions the centroids spread along (two centroids have one: the second axis stays zero).
        rows = min(2, int((singular > 1e-9 * max(float(singular[0]), 1e-300)).sum()))
        axes[:rows] = vt[:rows]
        for i in range(rows):
            axes[i] *= self._sign(i, axes[i])
        variance = singular**2
        total = float(variance.sum())
        self.explained = [float(variance[i] / total) if i < rows else 0.0 for i in range(2)]
        self.centroids, self.mean, self.axes = centroids.copy(), mean, axes
        self.fits += 1
        return True

    def _sign(self, i: int, axis: np.ndarray) -> float:
        """+1 or -1: agree with the previous fit's axis ``i``, else make the largest loading positive."""
        if self.axes is not None and self.axes.shape == (2, axis.shape[0]) and self.axes[i].any():
            return -1.0 if float(axis @ self.axes[i]) < 0 else 1.0
        return -1.0 if axis[np.argmax(np.abs(axis))] < 0 else 1.0

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """[n, 2] coordinates of ``vectors`` [n, dim]; call :meth:`fit` first."""
        if self.axes is None or self.mean is None:
            raise ValueError("fit the projection on the centroids first")
        vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, self.axes.shape[1])
        return (vectors - self.mean) @ self.axes.T
