"""Incremental k-means over user vectors, with membership bookkeeping.

Each centroid is the running mean of the vectors of the users currently assigned to it:
the model keeps per-centroid sums and counts, and when a user's vector changes the old vector
is taken out of its old segment and the new one added to its nearest centroid. That is
MacQueen's sequential k-means (a mini-batch update with learning rate 1/count) extended with
removals, so a user who is updated a thousand times still counts once. Centroids are seeded by
k-means++ (scikit-learn) on the first ``seed_users`` users, who are then assigned at once.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.cluster import KMeans

if TYPE_CHECKING:
    from stream.config import Settings


@dataclass(frozen=True, slots=True)
class Assignment:
    segment: int
    distance: float


def nearest(centroids: np.ndarray, vector: np.ndarray) -> Assignment:
    """The closest centroid by Euclidean distance (on unit user vectors)."""
    d2 = np.einsum("kd,kd->k", centroids - vector, centroids - vector)
    best = int(np.argmin(d2))
    return Assignment(best, float(np.sqrt(max(d2[best], 0.0))))


def new_model(settings: "Settings", dim: int) -> "OnlineKMeans":
    """An unseeded model configured by ``settings`` (stream.config.Settings)."""
    return OnlineKMeans(k=settings.k, dim=dim, seed_users=settings.seed_users)


@dataclass
class OnlineKMeans:
    """Centroids, member sums and counts, and a version bumped on every applied batch."""

    k: int
    dim: int
    seed_users: int
    random_state: int = 0
    version: int = 0
    centroids: np.ndarray | None = None  # float64 [k, dim]; None until seeded
    sums: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    seed_buffer: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sums = np.zeros((self.k, self.dim), dtype=np.float64)
        self.counts = np.zeros(self.k, dtype=np.int64)

    @property
    def seeded(self) -> bool:
        return self.centroids is not None

    def assign(self, vector: np.ndarray) -> Assignment:
        if self.centroids is None:
            raise RuntimeError("model not seeded yet")
        return nearest(self.centroids, vector)

    def _move(self, segment: int, vector: np.ndarray, sign: int) -> None:
        self.sums[segment] += sign * vector
        self.counts[segment] += sign
        if self.counts[segment] > 0:
            self.centroids[segment] = self.sums[segment] / self.counts[segment]  # type: ignore[index]
        else:  # an emptied centroid stays where it was; its sums are exactly zero again
            self.sums[segment] = 0.0
            self.counts[segment] = 0

    def update(
        self, old_vector: np.ndarray | None, old_segment: int | None, new_vector: np.ndarray
    ) -> Assignment | None:
        """Move a user from its old vector/segment to its new vector; None while unseeded."""
        if self.centroids is None:
            return None
        if old_segment is not None and old_vector is not None:
            self._move(old_segment, old_vector.astype(np.float64), -1)
        assignment = self.assign(new_vector)
        self._move(assignment.segment, new_vector.astype(np.float64), +1)
        return assignment

    def buffer(self, user_id: str, vector: np.ndarray) -> None:
        """Remember a user's latest vector until there are enough users to seed."""
        self.seed_buffer[user_id] = vector.astype(np.float32)

    def ready_to_seed(self) -> bool:
        return self.centroids is None and len(self.seed_buffer) >= self.seed_users

    def seed(self) -> dict[str, Assignment]:
        """k-means++ and Lloyd on the buffered users; returns each buffered user's segment."""
        users = sorted(self.seed_buffer)
        matrix = np.stack([self.seed_buffer[u] for u in users]).astype(np.float64)
        km = KMeans(n_clusters=self.k, init="k-means++", n_init=3, random_state=self.random_state)
        km.fit(matrix)
        self.centroids = km.cluster_centers_.astype(np.float64)
        self.sums[:] = 0.0
        self.counts[:] = 0
        result: dict[str, Assignment] = {}
        for user, row in zip(users, matrix):
            assignment = self.assign(row)
            self.sums[assignment.segment] += row
            self.counts[assignment.segment] += 1
            result[user] = assignment
        filled = self.counts > 0
        self.centroids[filled] = self.sums[filled] / self.counts[filled, None]
        self.seed_buffer.clear()
        return result

    def sizes(self) -> list[int]:
        return [int(c) for c in self.counts]

    # Persistence: one JSON document, arrays as base64 little-endian bytes.
    def to_bytes(self) -> bytes:
        def enc(a: np.ndarray, dtype: str) -> str:
            return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode()

        doc: dict[str, Any] = {
            "format": 1,
            "k": self.k,
            "dim": self.dim,
            "seed_users": self.seed_users,
            "random_state": self.random_state,
            "version": self.version,
            "centroids": None if self.centroids is None else enc(self.centroids, "<f8"),
            "sums": enc(self.sums, "<f8"),
            "counts": [int(c) for c in self.counts],
            "seed_buffer": {u: enc(v, "<f4") for u, v in self.seed_buffer.items()},
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "OnlineKMeans":
        doc = json.loads(raw)

        def dec(text: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
            return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape).copy()

        k, dim = doc["k"], doc["dim"]
        model = cls(k=k, dim=dim, seed_users=doc["seed_users"], random_state=doc["random_state"])
        model.version = doc["version"]
        if doc["centroids"] is not None:
            model.centroids = dec(doc["centroids"], "<f8", (k, dim))
        model.sums = dec(doc["sums"], "<f8", (k, dim))
        model.counts = np.asarray(doc["counts"], dtype=np.int64)
        model.seed_buffer = {
            u: dec(v, "<f4", (dim,)).astype(np.float32) for u, v in doc["seed_buffer"].items()
        }
        return model
